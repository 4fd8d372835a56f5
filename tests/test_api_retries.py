"""The remote client tries idempotent requests again when the server or the store stumbles
(a restart, a load balancer switching servers), and never a request that changes state; the
requests of a create are all answered alike when repeated, so they are all tried again."""

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


def test_a_server_that_never_comes_back_is_one_clear_error(monkeypatch):
    from tests.team import free_port

    monkeypatch.setattr("grid.client.api_session._BACKOFF", (0.01, 0.01))

    down = ApiSession(f"http://127.0.0.1:{free_port()}", "grid_x")
    with down, pytest.raises(errors.ServerUnreachableError, match="cannot reach the grid"):
        down.call("GET", "/v1/whoami")


_MANIFEST = "ab" * 16


def _version(manifest_id: str = _MANIFEST, status: str = "uploading") -> dict[str, object]:
    return {
        "datastore": "ds", "number": 1, "status": status, "reason": None, "source": "/x",
        "files": 0, "size": 0, "stored_bytes": 0, "created_at": "2024-01-01T00:00:00+00:00",
        "finished_at": None, "manifest_id": manifest_id, "host": "h", "pid": 1,
    }  # fmt: skip


_GONE = (404, {"code": "version_not_found", "detail": "ds:1 does not exist", "attrs": {}})


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each method's requests from its script, in turn (the last answer repeats)."""

    script: dict[str, list[tuple[int, object]]]
    seen: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append(f"{self.command} {self.path}")
        answers = self.script[self.command]
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer


@pytest.fixture
def scripted(monkeypatch):
    """(catalog on a scripted server, its script by method, the requests it saw)."""
    from grid.client.remote_catalog import RemoteCatalog

    monkeypatch.setattr("grid.client.api_session._BACKOFF", (0.01, 0.01))
    monkeypatch.setattr("grid.client.remote_catalog._DISCARD_BACKOFF", (0.01,))
    script: dict[str, list[tuple[int, object]]] = {}
    seen: list[str] = []
    handler = type("Handler", (_Scripted,), {"script": script, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with ApiSession(f"http://127.0.0.1:{server.server_address[1]}", "grid_x") as api:
        yield RemoteCatalog(api, "me"), script, seen
    server.shutdown()
    server.server_close()


def test_each_request_of_a_create_is_tried_again_when_a_server_stops(scripted):
    from grid.records import Lease

    catalog, script, seen = scripted
    lease = Lease("h", 1, 60.0)
    script["POST"] = [(502, None), (201, _version())]
    assert catalog.new_version("ds", "/x", _MANIFEST, lease).number == 1
    script["PATCH"] = [(503, None), (204, None)]
    catalog.set_progress("ds", 1, 10, 20)
    catalog.set_status("ds", 1, "processing", lease=lease)
    script["POST"] = [(504, None), (200, _version(status="succeeded"))]
    catalog.set_status("ds", 1, "succeeded", lease=lease)
    assert seen == [
        *["POST /v1/datastores/me/ds/versions"] * 2,
        *["PATCH /v1/datastores/me/ds/versions/1"] * 3,
        *["POST /v1/datastores/me/ds/versions/1/commit"] * 2,
    ]


@pytest.mark.parametrize(
    ("check", "deletes"),
    [
        ((200, _version()), 2),  # still this create's: sent again
        (_GONE, 1),  # the first try did it
        ((200, _version("cd" * 16)), 1),  # the number went to another create meanwhile
    ],
)
def test_a_lost_discard_is_sent_again_only_while_the_version_is_still_this_creates(
    scripted, check, deletes
):
    from grid.records import Lease

    catalog, script, seen = scripted
    script["POST"] = [(201, _version())]
    catalog.new_version("ds", "/x", _MANIFEST, Lease("h", 1, 60.0))
    script["DELETE"] = [(502, None), (204, None)]
    script["GET"] = [check]
    catalog.discard_version("ds", 1)
    assert sum(r.startswith("DELETE") for r in seen) == deletes


def test_a_discard_that_finds_the_version_gone_is_done(scripted):
    catalog, script, _ = scripted
    script["DELETE"] = [_GONE]
    catalog.discard_version("ds", 1)
