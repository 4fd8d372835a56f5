"""A real HTTP server on 127.0.0.1 serving test archives, with switches for what servers do:
Range support or not, validators (ETag, Last-Modified) or not, redirects, a connection that
breaks after some bytes, a file that changes between requests, and a body that trickles."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Served:
    """What the server serves and how; ``requests`` logs (path, Range header) per GET."""

    files: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True
    redirects: dict[str, str] = field(default_factory=dict)
    break_after: int | None = None  # the first full GET of a file stops after this many bytes
    requests: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False  # no Content-Length
    stall_after: int | None = None  # full GETs send this many bytes, then wait for ``resume``
    resume: threading.Event = field(default_factory=threading.Event)
    etag: str | None = '"v1"'  # sent (with Accept-Ranges) while ``ranges``; None: no ETag
    last_modified: str | None = None  # sent when set
    changes: dict[str, bytes] = field(default_factory=dict)  # after a path's first GET: these
    trickle_after: int | None = None  # full GETs send this many bytes, then trickle the rest
    trickle_every: float = 1.0  # ... one byte per this many seconds
    trickle_for: float = 30.0  # ... for at most this long, then close the connection
    if_ranges: list[str] = field(default_factory=list)  # the If-Range header of Range GETs


class _Handler(http.server.BaseHTTPRequestHandler):
    served: Served
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        s = self.served
        s.requests.append((self.path, self.headers.get("Range", "")))
        if self.path in s.redirects:
            self.send_response(302)
            self.send_header("Location", s.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = s.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        if self.path in s.changes:  # the next GET sees other bytes, under the same validators
            s.files[self.path] = s.changes.pop(self.path)
        start, end, status = 0, len(data), 200
        rng = self.headers.get("Range", "")
        if s.ranges and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first)
            end = int(last) + 1 if last else len(data)
            status = 206
            s.if_ranges.append(self.headers.get("If-Range", ""))
        self.send_response(status)
        if s.ranges:
            self.send_header("Accept-Ranges", "bytes")
            if s.etag:
                self.send_header("ETag", s.etag)
        if s.last_modified:
            self.send_header("Last-Modified", s.last_modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        body = data[start:end]
        if not s.chunked:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        if s.stall_after is not None and status == 200:
            self.wfile.write(body[: s.stall_after])
            self.wfile.flush()
            s.resume.wait(60)
            self.close_connection = True
            return
        if s.trickle_after is not None and status == 200:
            self.wfile.write(body[: s.trickle_after])
            self.wfile.flush()
            until = time.monotonic() + s.trickle_for
            for i in range(s.trickle_after, len(body)):
                if time.monotonic() > until:
                    break
                time.sleep(s.trickle_every)
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
            self.close_connection = True
            return
        if s.break_after is not None and status == 200:
            s.break_after, cut = None, s.break_after
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up mid-body on purpose (a seek, a refused archive)


class ArchiveServer:
    """Start with ``with ArchiveServer() as server``; ``server.url(path)`` names a file."""

    def __init__(self) -> None:
        self.served = Served()
        handler = type("Handler", (_Handler,), {"served": self.served})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def __enter__(self) -> ArchiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def tar_gz(files: dict[str, bytes], mtime: int = 1_700_000_000) -> bytes:
    """A .tar.gz of ``files`` (path -> bytes), in path order, every member dated ``mtime``
    (the same files always make the same bytes)."""
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
