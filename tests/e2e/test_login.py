"""`grid login`, `logout`, `whoami` and `grid key ...` against real `grid server` processes,
through the real CLI: what is saved (and when nothing is), what the environment overrides, and
that a revoked key is refused at once by every server on the database."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from tests.conftest import _free_port
from tests.e2e.conftest import GRID, Result
from tests.e2e.test_server_accounts import _admin, _start, _user

pytestmark = pytest.mark.slow  # a `grid server` per case


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Two servers on one SQLite database, shared by the tests of this module (each test
    makes users of its own)."""
    tmp = tmp_path_factory.mktemp("login-servers")
    database = f"sqlite:///{tmp / 'server.db'}"
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    started = [_start(database, tmp / f"home{i}", log) for i in range(2)]
    yield database, [url for _, url in started]
    for proc, _ in started:
        proc.terminate()
        proc.wait(10)
    log.close()


@pytest.fixture
def grid(tmp_path):
    """The CLI with its own config folder and no credentials in the environment."""
    base = {k: v for k, v in os.environ.items() if k not in ("GRID_URL", "GRID_API_KEY")}
    base.update(GRID_CONFIG_DIR=str(tmp_path / "config"), GRID_HOME=str(tmp_path / "home"))

    def run(*args: str, stdin: str | None = None, **env: str) -> Result:
        p = subprocess.run(
            [*GRID, *args], capture_output=True, text=True, input=stdin, env={**base, **env},
            timeout=60,
        )  # fmt: skip
        return Result(p.returncode, p.stdout, p.stderr)

    run.file = tmp_path / "config" / "credentials.json"  # type: ignore[attr-defined]
    return run


def _one_line(r: Result) -> str:
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    return lines[0]


def test_login_saves_a_private_file_that_whoami_and_logout_use(team, grid):
    database, (a, _b) = team
    key = _user(database, "lena")
    assert _admin(database, "team", "create", "vision").returncode == 0
    assert _admin(database, "team", "add", "vision", "lena").returncode == 0
    r = grid("login", "--username", "lena", "--key", key, "--url", a + "/")
    assert r.code == 0, r.err
    assert r.out == f"logged in to {a} as lena (teams: vision)\n"
    assert stat.S_IMODE(grid.file.stat().st_mode) == 0o600
    assert json.loads(grid.file.read_text()) == {"url": a, "username": "lena", "api_key": key}
    r = grid("whoami")
    assert (r.code, r.out) == (0, f"lena at {a} (teams: vision)\n")
    me = json.loads(grid("whoami", "--json").out)
    assert me["username"] == "lena" and me["url"] == a and me["teams"] == ["vision"]
    assert me["key_id"] and key.startswith(f"grid_{me['key_id']}_")
    r = grid("logout")
    assert (r.code, r.out) == (0, f"logged out of {a}\n")
    assert not grid.file.exists()
    r = grid("logout")
    assert (r.code, r.out) == (0, "not logged in\n")
    r = grid("whoami")
    assert r.code == 9 and r.out == ""
    assert "not logged in: run grid login --username U --key K --url URL" in _one_line(r)
    # --api-key is --key; `-` reads the key from standard input; GRID_URL is the default URL
    r = grid("login", "-u", "lena", "--api-key", "-", stdin=key + "\n", GRID_URL=a)
    assert r.code == 0 and r.out == f"logged in to {a} as lena (teams: vision)\n", r.err


def test_a_failed_login_saves_nothing(team, grid):
    database, (a, _b) = team
    key = _user(database, "max")
    other = _user(database, "nina")
    r = grid("login", "--username", "max", "--key", key[:-2] + "xx", "--url", a)
    assert r.code == 9 and "unknown, expired or revoked" in _one_line(r)
    r = grid("login", "--username", "max", "--key", other, "--url", a)
    assert r.code == 2 and "the key belongs to nina, not max" in _one_line(r)
    down = f"http://127.0.0.1:{_free_port()}"
    r = grid("login", "--username", "max", "--key", key, "--url", down)
    line = _one_line(r)
    assert r.code == 10 and f"cannot reach the grid server at {down}" in line
    assert "GRID_HOME" not in line and "Traceback" not in r.err
    r = grid("login", "--username", "max", "--key", key, "--url", "ftp://x")
    assert r.code == 2 and "not a server URL" in _one_line(r)
    assert not grid.file.parent.exists() or not any(grid.file.parent.iterdir())
    # over an existing login, a failed one changes nothing
    assert grid("login", "-u", "max", "--key", key, "--url", a).code == 0
    saved = grid.file.read_text()
    assert grid("login", "-u", "max", "--key", other, "--url", a).code == 2
    assert grid.file.read_text() == saved


def test_the_environment_overrides_the_file(team, grid):
    database, (a, b) = team
    key = _user(database, "olga")
    pia = _user(database, "pia")
    assert grid("login", "-u", "olga", "--key", key, "--url", a).code == 0
    r = grid("whoami", GRID_URL=b, GRID_API_KEY=pia)
    assert (r.code, r.out) == (0, f"pia at {b} (no teams)\n"), r.err
    r = grid("whoami", GRID_API_KEY=pia)  # the URL comes from the file
    assert (r.code, r.out) == (0, f"pia at {a} (no teams)\n"), r.err
    r = grid("whoami", GRID_URL=b)  # the key comes from the file
    assert (r.code, r.out) == (0, f"olga at {b} (no teams)\n"), r.err
    grid("logout")
    r = grid("whoami", GRID_URL=b, GRID_API_KEY=pia)  # no file needed
    assert (r.code, r.out) == (0, f"pia at {b} (no teams)\n"), r.err
    r = grid("whoami", GRID_API_KEY=pia)
    assert r.code == 2 and "GRID_URL" in _one_line(r)


def _keys(database: str, servers: list[str], grid) -> None:
    """Create, list and revoke keys on servers[0]; the revoked one fails on every server."""
    a = servers[0]
    key = _user(database, "quinn")
    assert grid("login", "-u", "quinn", "--key", key, "--url", a).code == 0
    r = grid("key", "create", "--expires", "1d")
    assert r.code == 0, r.err
    day_key = r.out.splitlines()[0]
    assert day_key.startswith("grid_") and len(r.out.splitlines()) == 1
    assert "it is shown only now" in _one_line(r) and "expires never" not in r.err
    r = grid("key", "create", "--json")
    forever = json.loads(r.out)
    assert set(forever) == {"id", "api_key", "expires_at"} and forever["expires_at"] is None
    for new in (day_key, forever["api_key"]):
        for server in servers:
            r = grid("whoami", GRID_URL=server, GRID_API_KEY=new)
            assert r.code == 0 and r.out.startswith("quinn at"), r.err
    r = grid("key", "list")
    assert r.code == 0 and forever["id"] in r.out and "never" in r.out
    assert len(r.out.strip().splitlines()) == 4  # a header and three keys
    listed = json.loads(grid("key", "list", "--json").out)
    assert forever["id"] in {k["id"] for k in listed}
    for secret in (key, day_key, forever["api_key"]):
        assert secret.split("_", 2)[2] not in r.out + json.dumps(listed)
    r = grid("key", "revoke", forever["id"])
    assert (r.code, r.out) == (0, f"revoked key {forever['id']}\n"), r.err
    for server in servers:
        r = grid("whoami", GRID_URL=server, GRID_API_KEY=forever["api_key"])
        assert r.code == 9 and "unknown, expired or revoked" in _one_line(r)
    revoked = next(k for k in json.loads(grid("key", "list", "--json").out)
                   if k["id"] == forever["id"])  # fmt: skip
    assert revoked["revoked_at"] is not None
    r = grid("key", "revoke", "000000000000")
    assert r.code == 3 and "no key" in _one_line(r)
    r = grid("key", "create", "--expires", "soon")
    assert r.code == 2 and "not a duration" in _one_line(r)


def test_keys_on_sqlite(team, grid):
    database, servers = team
    _keys(database, servers, grid)


def test_keys_on_postgresql(postgres_url, tmp_path, grid):
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    started = [_start(postgres_url, tmp_path / f"home{i}", log) for i in range(2)]
    try:
        _keys(postgres_url, [url for _, url in started], grid)
    finally:
        for proc, _ in started:
            proc.terminate()
            proc.wait(10)
        log.close()


def test_revoking_the_key_in_use_logs_you_out_in_effect(team, grid):
    database, (a, b) = team
    key = _user(database, "ruth")
    assert grid("login", "-u", "ruth", "--key", key, "--url", b).code == 0
    key_id = json.loads(grid("whoami", "--json").out)["key_id"]
    r = grid("key", "revoke", key_id)
    assert r.code == 0 and "the key you are logged in with" in r.err
    for server in (a, b):
        assert grid("whoami", GRID_URL=server).code == 9


def test_an_exposed_or_damaged_file_is_refused_and_login_repairs_it(team, grid):
    database, (a, _b) = team
    key = _user(database, "sam")
    assert grid("login", "-u", "sam", "--key", key, "--url", a).code == 0
    grid.file.chmod(0o644)
    r = grid("whoami")
    line = _one_line(r)
    assert r.code == 2 and str(grid.file) in line
    assert "is readable by others (mode 0644): chmod 600 it or grid login again" in line
    assert key not in r.err
    grid.file.chmod(0o600)
    grid.file.write_text('{"url": "' + a)
    r = grid("key", "list")
    assert r.code == 2 and f"{grid.file} is damaged (not JSON): run grid login again" in (
        _one_line(r)
    )
    assert grid("login", "-u", "sam", "--key", key, "--url", a).code == 0
    assert grid("whoami").out == f"sam at {a} (no teams)\n"
    assert grid("logout").code == 0
