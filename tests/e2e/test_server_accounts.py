"""Team mode's first slice (issue 14): `grid server` processes on one database, accounts made
with `grid admin`, API keys over HTTP. Every endpoint is tried by every kind of caller; keys
never appear in responses after creation, in the server's log or in the database."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import GRID
from tests.team import free_port, start_server

pytestmark = pytest.mark.slow  # each case starts `grid server` processes


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    return request.getfixturevalue("postgres_url")


def _start(database: str, home, log) -> tuple[subprocess.Popen, str]:
    return start_server(database, str(home / "objects"), home, log)


@pytest.fixture
def servers(database, tmp_path):
    """Two server processes on one database (they keep no state of their own)."""
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    started = [_start(database, tmp_path / f"home{i}", log) for i in range(2)]
    yield database, [url for _, url in started], tmp_path / "server.log"
    for proc, _ in started:
        proc.terminate()
        proc.wait(10)
    log.close()


def _admin(database: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GRID, "admin", *args, "--database-url", database], capture_output=True, text=True
    )


def _user(database: str, name: str) -> str:
    r = _admin(database, "user", "create", name, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["username"] == name
    return out["api_key"]


def _call(url: str, method: str, path: str, key: str | None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.request(method, f"{url}{path}", headers=headers, timeout=10, **kw)


def test_every_endpoint_by_every_kind_of_caller(servers):
    database, (a, b), log = servers
    alice = _user(database, "alice")
    bob = _user(database, "bob")
    r = _call(a, "POST", "/v1/keys", alice, json={"expires_in": 1})
    assert r.status_code == 201
    expiring = r.json()["api_key"]
    revoked = _call(a, "POST", "/v1/keys", alice, json={}).json()
    assert _call(b, "DELETE", f"/v1/keys/{revoked['id']}", alice).status_code == 204
    carol = _user(database, "carol")
    assert _admin(database, "user", "disable", "carol").returncode == 0
    time.sleep(1.1)
    refused = {
        "no key": None,
        "garbage": "let-me-in",
        "forged": alice[:-2] + "xx",
        "revoked": revoked["api_key"],
        "expired": expiring,
        "disabled user": carol,
    }
    endpoints = [("GET", "/v1/whoami"), ("GET", "/v1/keys"), ("POST", "/v1/keys"),
                 ("DELETE", "/v1/keys/000000000000")]  # fmt: skip
    for server in (a, b):  # either server answers the same
        assert _call(server, "GET", "/v1/health", None).status_code == 200
        for method, path in endpoints:
            body = {"json": {}} if method == "POST" else {}
            for who, key in refused.items():
                r = _call(server, method, path, key, **body)
                assert r.status_code == 401, (who, method, path, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                problem = r.json()
                assert problem["code"] == "unauthorized" and problem["status"] == 401
                assert "alice" not in r.text and "bob" not in r.text
    # a valid key sees only its own user's keys
    assert _call(b, "GET", "/v1/whoami", alice).json()["username"] == "alice"
    alice_keys = _call(a, "GET", "/v1/keys", alice).json()
    bob_keys = _call(a, "GET", "/v1/keys", bob).json()
    assert len(alice_keys) == 3 and len(bob_keys) == 1
    assert all("api_key" not in k for k in alice_keys + bob_keys)
    r = _call(a, "DELETE", f"/v1/keys/{alice_keys[0]['id']}", bob)  # alice's key, bob asks
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert _call(a, "GET", "/v1/whoami", alice).status_code == 200  # untouched
    r = _call(a, "POST", "/v1/keys", alice, json={"expires_in": -5})
    assert r.status_code == 422  # bad input is refused, not a 5xx
    text = log.read_text(errors="replace")
    for key in (alice, bob, carol, expiring, revoked["api_key"]):
        assert key not in text and key.split("_", 2)[2] not in text


def test_revoking_the_key_in_use_acts_at_once_on_every_server(servers):
    database, (a, b), _log = servers
    key = _user(database, "dana")
    key_id = _call(a, "GET", "/v1/whoami", key).json()["key_id"]
    assert _call(b, "DELETE", f"/v1/keys/{key_id}", key).status_code == 204
    for server in (a, b):
        assert _call(server, "GET", "/v1/whoami", key).status_code == 401


def test_openapi_is_published_and_admin_errors_are_one_line(servers):
    database, (a, _b), _log = servers
    spec = httpx.get(f"{a}/openapi.json", timeout=10).json()
    assert {"/v1/whoami", "/v1/keys", "/v1/keys/{key_id}", "/v1/health"} <= set(spec["paths"])
    _user(database, "erin")
    r = _admin(database, "user", "create", "erin")
    assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1
    r = _admin(database, "user", "create", "Not/Valid")
    assert r.returncode == 2 and "invalid user name" in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "GRID_DATABASE_URL"}
    r = subprocess.run([*GRID, "admin", "user", "list"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "--database-url" in r.stderr


def test_the_client_side_rebuilds_the_servers_errors(servers):
    from grid import errors
    from grid.client.api_session import ApiSession

    database, (a, _b), _log = servers
    key = _user(database, "fay")
    with ApiSession(a, key) as api:
        assert api.call("GET", "/v1/whoami")["username"] == "fay"
        with pytest.raises(errors.NotFoundError, match="you have no key"):
            api.call("DELETE", "/v1/keys/000000000000")
    forged = ApiSession(a, "grid_000000000000_" + "x" * 40)
    with forged, pytest.raises(errors.UnauthorizedError, match="unknown, expired or revoked"):
        forged.call("GET", "/v1/whoami")
    with ApiSession(f"http://127.0.0.1:{free_port()}", key) as api:
        with pytest.raises(errors.StorageError, match="cannot reach the grid server") as down:
            api.call("GET", "/v1/whoami")
        assert down.value.transient


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(servers):
    """A bounded run of schemathesis over /openapi.json (every operation, with a valid key and
    without): no 5xx."""
    import shutil
    import sys

    database, (a, _b), _log = servers
    key = _user(database, "fuzz")
    tool = shutil.which("schemathesis") or os.path.join(os.path.dirname(sys.executable), "st")
    for auth in ([], ["-H", f"Authorization: Bearer {key}"]):
        r = subprocess.run(
            [tool, "run", f"{a}/openapi.json", "-c", "not_a_server_error", "-n", "10",
             "--seed", "7", *auth],
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout[-3000:]
