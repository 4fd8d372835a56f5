#!/usr/bin/env python3
"""Serve a folder's files on 127.0.0.1 for the import benchmark: GET with Range support,
bodies sent with sendfile(2) so the server costs as little CPU as a static file server.

    python bench/http_serve.py DIR PORT
"""

from __future__ import annotations

import http.server
import os
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = os.path.join(self.root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start, end, status = 0, size, 200
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start, end, status = int(first), (int(last) + 1 if last else size), 206
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        with open(path, "rb") as f:
            try:
                self.wfile.flush()
                self.connection.sendfile(f, start, end - start)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stops reading mid-body (a zip reader seeking) is no error


def main() -> None:
    Handler.root = sys.argv[1]
    server = Server(("127.0.0.1", int(sys.argv[2])), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
