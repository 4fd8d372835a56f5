"""A real HTTP server on 127.0.0.1 serving test archives, with switches for what servers do:
Range support or not, redirects, and a connection that breaks after some bytes."""

from __future__ import annotations

import http.server
import threading
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
        start, end, status = 0, len(data), 200
        rng = self.headers.get("Range", "")
        if s.ranges and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first)
            end = int(last) + 1 if last else len(data)
            status = 206
        self.send_response(status)
        if s.ranges:
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", '"v1"')
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
