"""Team mode in tests: real `grid server` processes on loopback ports, users made with the
operator's tool, clients logged in with their keys."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import httpx

GRID = [sys.executable, "-m", "grid"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    database: str, storage: str, home, log, *args: str, **env: str
) -> tuple[subprocess.Popen, str]:
    """A `grid server` on a free port, once it answers; (process, URL)."""
    port = free_port()
    full_env = {**os.environ, "GRID_HOME": str(home), **env}
    proc = subprocess.Popen(
        [
            *GRID,
            "server",
            "--database-url",
            database,
            "--storage-url",
            storage,
            "--port",
            str(port),
            *args,
        ],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("grid server did not start")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def new_user(
    database: str, name: str | None = None, teams: tuple[str, ...] = ()
) -> tuple[str, str]:
    """A user (a fresh name unless given) in ``teams`` (made if missing); (name, API key)."""
    from grid.server.run import Admin

    name = name or f"u{uuid.uuid4().hex[:10]}"
    with Admin(database) as admin:
        _, key, _ = admin.create_user(name)
        known = {u.name for u in admin.users()}
        for team in teams:
            if team not in known:
                admin.create_team(team)
            admin.add_member(team, name)
    return name, key


def wait_for(what, seconds: float = 60):
    """``what()``'s first truthy answer, asked every 0.2 s for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what.__name__}")
