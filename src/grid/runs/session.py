"""Sessions: JupyterLab as a detached run, its datastores at /datastores/<name>/<version>, a
``datastores`` link in its notebook folder, and datastores attached or detached while it runs.

The notebook folder (``GRID_HOME/sessions/NAME``) outlives the session, so a session started
again under the same name finds its notebooks. Attach and detach go to the session's first
process over its control socket: it mounts in the session's own namespace, so the kernels
see the change at once and nothing restarts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import socket
import sys
import time

from grid.client import DatastoreClient
from grid.errors import ConflictError, UsageError
from grid.records import RUN_LIVE, Attachment, RunInfo
from grid.runs import launch
from grid.runs.plan import Wanted, pin_all
from grid.settings import Settings

READY_TIMEOUT = 90.0


def lab_command(notebook_dir: str, ip: str, port: int, state_dir: str) -> list[str]:
    """JupyterLab: no browser, one port, quiet, nothing fetched from the internet (the
    token goes in the environment, never on the command line where `ps` shows it)."""
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ip={ip}",
        f"--port={port}",
        "--port-retries=0",
        "--allow-root",
        f"--ServerApp.root_dir={notebook_dir}",
        "--log-level=WARN",
        "--LabApp.log_level=WARN",
        "--ServerApp.jpserver_extensions=jupyter_lsp=False",  # it runs npm at start
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        f"--LabApp.workspaces_dir={os.path.join(state_dir, 'workspaces')}",
    ]


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        port: int = s.getsockname()[1]
        return port


def live(client: DatastoreClient, name: str) -> RunInfo:
    """The caller's running session ``name`` (or id)."""
    for run in reversed(client.list_runs("session")):
        if (run.name == name or str(run.id) == name) and run.status in RUN_LIVE:
            return run
    raise ConflictError(f"no running session {name!r}: `grid session list` shows them")


def create(
    client: DatastoreClient, name: str, wanted: list[Wanted], ip: str, port: int | None
) -> RunInfo:
    """Start a session in the background; return it once JupyterLab answers."""
    if importlib.util.find_spec("jupyterlab") is None:
        raise UsageError(
            "JupyterLab is not installed here",
            rule="pip install 'grid-datastores[session]'",
        )
    if name and any(r.name == name and r.status in RUN_LIVE for r in client.list_runs("session")):
        raise ConflictError(f"session {name!r} is already running: `grid session stop {name}`")
    home = Settings.from_env().home
    port = port or _free_port(ip)
    token = secrets.token_urlsafe(24)
    notebooks = os.path.join(home, "sessions", name or f"session-{secrets.token_hex(3)}")
    state = os.path.join(notebooks, ".grid-session")
    os.makedirs(state, exist_ok=True)
    url = f"http://{ip}:{port}/lab?token={token}"
    request = launch.Request(
        "session",
        name or os.path.basename(notebooks),
        lab_command(notebooks, ip, port, state),
        wanted,
        cwd=notebooks,
        details={"url": url, "token": token, "port": str(port), "notebooks": notebooks},
        extra_env={"JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": os.path.join(state, "rt")},
    )
    run, plan = launch.prepare(client, request)
    link = os.path.join(notebooks, "datastores")
    with contextlib.suppress(FileNotFoundError):
        os.remove(link)
    os.symlink(plan.root, link)
    launch.detached(client, run, plan)
    _wait_listening(ip, port, run)
    return run


def _wait_listening(ip: str, port: int, run: RunInfo) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=1):
            return
        time.sleep(0.2)
    raise ConflictError(
        f"session {run.name} did not answer on {ip}:{port} in {READY_TIMEOUT:.0f} s; "
        f"its log: {run.log_path}"
    )


def _control(run: RunInfo, request: dict[str, object]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        try:
            s.connect("\0" + run.detail("control"))
        except OSError as exc:
            raise ConflictError(f"session {run.name} does not answer: {exc.strerror}") from exc
        s.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(s.makefile("rb").readline() or b'{"error": "no answer"}')
    if "error" in answer:
        raise ConflictError(f"session {run.name}: {answer['error']}")


def attach(client: DatastoreClient, run: RunInfo, wanted: Wanted) -> Attachment:
    """Mount one more datastore into a running session."""
    (use,) = pin_all(client, [wanted], run.detail("root"))
    taken = {a.path for a in run.datastores if a.detached_at is None}
    if use.path in taken:
        raise ConflictError(f"{use.ref} is already attached to session {run.name} at {use.path}")
    client.runs.attach(run.id, [use])
    try:
        _control(
            run,
            {"op": "attach", "datastore": use.datastore, "version": use.version, "path": use.path},
        )
    except BaseException:
        client.runs.detach(run.id, use.datastore, use.version)
        raise
    return use


def detach(client: DatastoreClient, run: RunInfo, name: str, version: int | None) -> Attachment:
    """Unmount a datastore from a running session."""
    found = [
        a
        for a in run.datastores
        if a.detached_at is None and a.datastore == name and version in (None, a.version)
    ]
    if not found:
        raise ConflictError(f"{name} is not attached to session {run.name}")
    use = found[-1]
    _control(run, {"op": "detach", "path": use.path})
    client.runs.detach(run.id, use.datastore, use.version)
    return use
