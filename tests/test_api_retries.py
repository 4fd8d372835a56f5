"""The remote client tries idempotent requests again when the server or the store stumbles
(a restart, a load balancer switching servers), and never a request that changes state."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from grid import errors
from grid.client.api_session import ApiSession


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first ``fails`` requests of each method, then 200 with JSON."""

    fails = 2
    seen: dict[str, int]

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.seen[self.command] = self.seen.get(self.command, 0) + 1
        if self.seen[self.command] <= self.fails:
            self.send_response(503)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = json.dumps({"ok": True, "n": self.seen[self.command]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def flaky():
    seen: dict[str, int] = {}
    handler = type("Handler", (_Flaky,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_get_is_tried_again_until_the_server_answers(flaky):
    url, seen = flaky
    with ApiSession(url, "grid_x") as api:
        assert api.call("GET", "/v1/whoami") == {"ok": True, "n": 3}
    assert seen["GET"] == 3


def test_a_post_that_changes_state_is_not_repeated(flaky):
    url, seen = flaky
    with ApiSession(url, "grid_x") as api, pytest.raises(errors.StorageError) as failed:
        api.call("POST", "/v1/datastores/a/b/versions", {"source": "x"})
    assert seen["POST"] == 1 and failed.value.transient


def test_an_idempotent_post_may_be_repeated(flaky):
    url, seen = flaky
    with ApiSession(url, "grid_x") as api:
        assert api.call("POST", "/v1/owners/a/objects", {}, idempotent=True)["n"] == 3
    assert seen["POST"] == 3


def test_a_server_that_never_comes_back_is_one_clear_error():
    from tests.team import free_port

    down = ApiSession(f"http://127.0.0.1:{free_port()}", "grid_x")
    with down, pytest.raises(errors.ServerUnreachableError, match="cannot reach the grid"):
        down.call("GET", "/v1/whoami")
