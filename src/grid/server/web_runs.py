"""The runs and sessions pages: the caller's, newest first, live (a live session links to its
JupyterLab); starting one with datastores picked from dropdowns (name, then version: the
latest by default); a run's log; stopping one.

A server runs people's code only when its operator said so (``grid server --run-executor
local|slurm``): the run is started by the very CLI a user would type (``grid run --detach`` or
``grid session create``), as the server's OS user, logged in as the signed-in user with a key
of their own, in a home folder per user under the server's scratch space; the server's
database and storage settings are not passed on. Without that setting the page shows the
command to type instead. A run's log is shown when it lives in that folder on this machine.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from grid.catalog.runs import RunRegistry
from grid.errors import GridError, UsageError
from grid.records import SUCCEEDED, Principal, RunInfo
from grid.server.auth import principal
from grid.server.datastores_api import list_datastores
from grid.server.state import ServerState, server_state
from grid.server.web_common import page, render, signed_in, style, to_sign_in, when

router = APIRouter(include_in_schema=False)
KEY_SECONDS = 30 * 24 * 3600  # the key a started run holds
LOG_TAIL = 64 * 1024
_SERVER_ONLY = ("GRID_DATABASE_URL", "GRID_SERVER_STORAGE", "GRID_S3_IMPORT_BUCKETS")


def _choices(request: Request, who: Principal) -> list[dict[str, str]]:
    """Each datastore with a succeeded version: its ref and its succeeded versions."""
    out = []
    for item in list_datastores(request, who):
        if item.datastore.latest is None:
            continue
        ref = (
            item.datastore.name if item.owner == who.user else f"{item.owner}/{item.datastore.name}"
        )
        out.append({"ref": ref, "owner": item.owner, "name": item.datastore.name})
    return out


def _versions(request: Request, who: Principal, ref: str) -> list[int]:
    owner, _, name = ref.rpartition("/")
    view = server_state(request).access.owner(who, owner or who.user, name)
    return [v.number for v in reversed(view.catalog.versions(name)) if v.status == SUCCEEDED]


@router.get("/ui/runs")
def runs_page(request: Request) -> Response:
    """The caller's runs and sessions, newest first (a live session links to its lab)."""
    from grid.catalog.runs import RunRegistry

    who = signed_in(request)
    if who is None:
        return to_sign_in()
    registry = RunRegistry(server_state(request).access.owner(who, who.user).catalog)
    runs = []
    for r in reversed(registry.list()):
        live = r.status in ("queued", "running")
        runs.append(
            {
                "id": r.id,
                "kind": r.kind,
                "name": r.name,
                "status": r.status,
                "style": style(r.status),
                "exit": "-" if r.exit_code is None else r.exit_code,
                "datastores": ", ".join(a.ref for a in r.datastores if a.detached_at is None)
                or "-",
                "executor": r.executor + (f" ({r.job_id})" if r.job_id else ""),
                "host": r.host,
                "started": when(r.started_at or r.created_at),
                "url": r.detail("url") if live and r.kind == "session" else "",
                "live": live,
            }
        )
    return page(request, who, "runs.html", runs=runs)


@router.get("/ui/runs/new")
def new_run_page(request: Request) -> Response:
    """The form: kind, name, command, datastores and versions."""
    who = signed_in(request)
    if who is None:
        return to_sign_in()
    choices = _choices(request, who)
    first = _versions(request, who, str(choices[0]["ref"])) if choices else []
    executor = server_state(request).run_executor
    return page(request, who, "run_new.html", choices=choices, first=first, executor=executor)


@router.get("/ui/runs/versions")
def version_options(request: Request, datastore: str) -> Response:
    """The version options of one datastore (the form asks when a datastore is picked)."""
    who = signed_in(request)
    if who is None:
        return to_sign_in(fragment=True)
    return render("version_options.html", versions=_versions(request, who, datastore))


def _command_line(kind: str, name: str, command: str, specs: list[str]) -> list[str]:
    line = ["run", "--detach"] if kind == "run" else ["session", "create"]
    for spec in specs:
        line += ["--datastore", spec]
    if kind == "run":
        if not command.strip():
            raise UsageError("a run needs a command", rule="e.g. python train.py --epochs 3")
        return [*line, *(["--name", name] if name else []), "sh", "-c", command]
    return [*line, *([name] if name else []), "--json"]


@router.post("/ui/runs")
def start_run(
    request: Request,
    kind: Annotated[str, Form()],
    name: Annotated[str, Form(max_length=200)] = "",
    command: Annotated[str, Form(max_length=10_000)] = "",
    datastore: Annotated[list[str] | None, Form()] = None,
    version: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Start it (when the operator allows), else show the command to type; what is wrong
    with the form is shown on it."""
    who = principal(request)  # a form post: the CSRF token is required
    try:
        line = _line(request, who, kind, name, command, datastore or [], version or [])
    except GridError as exc:
        return render("run_command.html", error=exc.message)
    state = server_state(request)
    if state.run_executor is None:
        shown = shlex.join(["grid", *[a for a in line if a not in ("--detach", "--json")]])
        return render("run_command.html", command=shown)
    if kind == "run":
        line[2:2] = ["--executor", state.run_executor]
    done = _spawn(state, request, who, line, KEY_SECONDS)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["it failed"])[-1]
        return render("run_command.html", error=why)
    return Response(status_code=200, headers={"HX-Redirect": "/ui/runs"})


def _line(
    request: Request,
    who: Principal,
    kind: str,
    name: str,
    command: str,
    datastores: list[str],
    versions: list[str],
) -> list[str]:
    """The CLI's arguments for the form (each datastore checked to be the caller's)."""
    if kind not in ("run", "session"):
        raise UsageError(f"no kind {kind!r}", rule="run or session")
    picked = [
        (d, v) for d, v in zip(datastores, versions + [""] * len(datastores), strict=False) if d
    ]
    for d, _ in picked:
        _versions(request, who, d)  # DatastoreNotFoundError for one the caller cannot see
    specs = [f"{d}:{v}" if v else d for d, v in picked]
    return _command_line(kind, name.strip(), command, specs)


def user_home(state: ServerState, who: Principal) -> str:
    """The GRID_HOME of the runs this server starts for ``who``."""
    return os.path.join(state.scratch, "homes", who.user)


def _spawn(
    state: ServerState, request: Request, who: Principal, line: list[str], seconds: float
) -> subprocess.CompletedProcess[str]:
    """``grid LINE...`` as ``who``, with a key of theirs good for ``seconds``."""
    home = user_home(state, who)
    work = os.path.join(home, "work")
    os.makedirs(work, exist_ok=True)
    key, _ = state.accounts.create_key(who.user, seconds)
    host, port = request.scope["server"]
    env = {k: v for k, v in os.environ.items() if k not in _SERVER_ONLY}
    env.update(GRID_HOME=home, GRID_URL=f"http://{host}:{port}", GRID_API_KEY=key)
    # our own CLI; the user's text is only ever sh -c's argument, in their run
    return subprocess.run(
        [sys.executable, "-m", "grid", *line],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _started_here(state: ServerState, who: Principal, run: RunInfo) -> str | None:
    """The log file of ``run`` if this server started it (its log is in ``who``'s home
    here), else None."""
    home = os.path.realpath(user_home(state, who))
    path = os.path.realpath(run.log_path or "")
    return path if path.startswith(home + os.sep) and os.path.isfile(path) else None


@router.post("/ui/runs/{run_id}/stop")
def stop_run(request: Request, run_id: int) -> Response:
    """Stop a run or session this server started (else: where to stop it)."""
    who = principal(request)  # a form post: the CSRF token is required
    state = server_state(request)
    run = RunRegistry(state.access.owner(who, who.user).catalog).get(run_id)
    if state.run_executor is None or _started_here(state, who, run) is None:
        return render(
            "run_command.html", command=f"grid {run.kind} stop {run.id}", elsewhere=run.host
        )
    done = _spawn(state, request, who, [run.kind, "stop", str(run.id)], 120)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["it failed"])[-1]
        return render("run_command.html", error=why)
    return Response(status_code=200, headers={"HX-Trigger": "refresh"})


@router.get("/ui/runs/{run_id}/log")
def run_log(request: Request, run_id: int) -> Response:
    """The end of a run's log, when this server started it (live while it runs)."""
    who = signed_in(request)
    if who is None:
        return to_sign_in()
    state = server_state(request)
    run = RunRegistry(state.access.owner(who, who.user).catalog).get(run_id)
    path = _started_here(state, who, run)
    text, where = None, run.host
    if path is not None:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - LOG_TAIL))
            text = f.read().decode("utf-8", errors="replace")
    live = run.status in ("queued", "running")
    values: dict[str, Any] = {"run": run, "text": text, "where": where, "live": live}
    if request.headers.get("hx-request"):
        return render("run_log_text.html", **values)
    return page(request, who, "run_log.html", **values)
