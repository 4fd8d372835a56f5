"""A fault-injecting HTTP reverse proxy for an S3 endpoint (issue 18, "bad peers").

Requests are forwarded as they came, Host header included, so a SigV4 signature made for
the proxy's ``host:port`` still holds at the store. ``inject`` adds a rule: the requests it
matches (method, substring of the path, from the ``nth`` match on, ``times`` of them; 0 for
every one) meet a fault instead of a clean answer:

    500, 503    an S3 XML error with that status (not forwarded; ``after=True``: forwarded
                first, so the store acts on it but the client hears an error)
    slowdown    503 SlowDown (throttling), not forwarded
    reset_request   the connection is reset after half the request body, not forwarded
    reset_response  forwarded, then the connection is reset after half the response body
                (at once where the answer has none, as a PUT's)
    stall       nothing is answered for ``stall`` seconds, then the connection is closed
    stall_body  forwarded, headers and half the body sent, then a stall and a close
    truncate    forwarded, the full Content-Length advertised, half the body sent, closed
    flip        forwarded, one byte in the middle of the response body flipped
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {"500", "503", "slowdown", "reset_request", "reset_response", "stall", "stall_body",
         "truncate", "flip"}  # fmt: skip
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "expect", "content-length"}  # fmt: skip
_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
)


@dataclass
class Rule:
    """One fault; ``seen`` counts the requests it matched, ``hits`` the faults it caused."""

    kind: str
    method: str | None = None
    key: str = ""
    nth: int = 1
    times: int = 1
    after: bool = False
    stall: float = 5.0
    seen: int = 0
    hits: int = 0

    def fires(self, method: str, path: str) -> bool:
        if (self.method and method != self.method) or self.key not in path:
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times and self.hits >= self.times):
            return False
        self.hits += 1
        return True


class FaultProxy:
    """The proxy on 127.0.0.1 (a free port) in front of ``upstream``; ``url`` is its address,
    ``log`` the (method, path, fault or None) of every request. Close it (or use ``with``)."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str | None]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def inject(self, kind: str, **match: object) -> Rule:
        """Add a fault rule (see the module docstring); return it to read its counters."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        rule = Rule(kind, **match)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def requests(self, method: str | None = None, key: str = "") -> list[str | None]:
        """The faults (None: clean) of the logged requests matching ``method`` and ``key``."""
        with self._lock:
            return [f for m, p, f in self.log if (not method or m == method) and key in p]

    def _choose(self, method: str, path: str) -> Rule | None:
        with self._lock:
            rule = next((r for r in self.rules if r.fires(method, path)), None)
            self.log.append((method, path, rule.kind if rule else None))
            return rule

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue answered for us

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _any(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        rule = proxy._choose(self.command, self.path)
        try:
            self._serve(proxy, rule)
        except OSError:  # the client went away (a timeout, our own reset)
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

    def _body(self, limit: int | None = None) -> bytes:
        """The request body (de-chunked), or only its first ``limit`` bytes."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n if limit is None else min(n, limit))
        out = bytearray()
        while size := int(self.rfile.readline().split(b";")[0], 16):
            out += self.rfile.read(size)
            self.rfile.readline()
            if limit is not None and len(out) >= limit:
                return bytes(out)
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return bytes(out)

    def _serve(self, proxy: FaultProxy, rule: Rule | None) -> None:
        kind = rule.kind if rule else None
        if kind == "reset_request":
            self._body(limit=int(self.headers.get("Content-Length") or 0) // 2)
            return self._reset()
        body = self._body()
        if kind == "stall":
            assert rule is not None
            proxy.stopping.wait(rule.stall)
            self.close_connection = True
            return None
        if kind in ("500", "503", "slowdown"):
            assert rule is not None
            if rule.after:
                self._forward(proxy, body)
            code = {"500": "InternalError", "503": "ServiceUnavailable"}.get(kind, "SlowDown")
            xml = _XML.format(code=code, message=f"injected {kind}").encode()
            return self._answer(500 if kind == "500" else 503, [], xml)
        status, headers, data = self._forward(proxy, body)
        if kind == "flip" and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
        if kind == "reset_response" and not data:
            return self._reset()  # the store acted, its answer is lost
        if kind in ("reset_response", "truncate", "stall_body") and self.command != "HEAD":
            assert rule is not None
            self._start(status, headers, len(data))
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if kind == "stall_body":
                proxy.stopping.wait(rule.stall)
            if kind == "reset_response":
                return self._reset()
            self.close_connection = True
            return None
        return self._answer(status, headers, data)

    def _forward(self, proxy: FaultProxy, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP:
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP]
            if self.command == "HEAD":
                kept.append(("Content-Length", response.getheader("Content-Length") or "0"))
            return response.status, kept, data
        finally:
            conn.close()

    def _start(self, status: int, headers: list[tuple[str, str]], length: int) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self._start(status, headers, len(data))
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(data)
        self.wfile.flush()

    def _reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed peer does."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
