"""Start a run or a session on this machine: pin its datastores, record it, and follow it in
the foreground or hand it to a detached supervisor."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from grid.client import DatastoreClient, connect
from grid.errors import ConflictError, GridError
from grid.records import RunInfo
from grid.runs import namespace
from grid.runs.init import InitPlan
from grid.runs.local import Supervisor, leave_terminal
from grid.runs.plan import ROOT, Wanted, pin_all, run_env
from grid.settings import Settings


@dataclass
class Request:
    """A run as asked for (``command`` already resolved: see ``plan.command_of``)."""

    kind: str
    name: str
    command: list[str]
    wanted: list[Wanted]
    cwd: str = field(default_factory=os.getcwd)
    details: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)


def runs_dir(home: str) -> str:
    """Where runs keep their logs and mount logs: ``GRID_HOME/runs``."""
    return os.path.join(home, "runs")


def prepare(
    client: DatastoreClient, request: Request, executor: str = "local"
) -> tuple[RunInfo, InitPlan]:
    """Pin the datastores, make the run's folder and record the run (queued).

    Raises:
        GridError: a datastore or version that cannot be attached; nothing was started.
    """
    settings = Settings.from_env()
    isolated = namespace.can_isolate()
    parent = runs_dir(settings.home)
    os.makedirs(parent, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix=f"{request.kind}-", dir=parent)
    root = ROOT if isolated else os.path.join(run_dir, "datastores")
    try:
        uses = pin_all(client, request.wanted, root)
        log_path = os.path.join(run_dir, "output.log")
        control = f"\0grid-{os.path.basename(run_dir)}-{os.getpid()}"
        run = client.runs.start(
            kind=request.kind,
            name=request.name,
            command=request.command,
            executor=executor,
            host=settings.host_id,
            pid=os.getpid(),
            log_path=log_path,
            lease_seconds=settings.lease_seconds,
            uses=uses,
            details={**request.details, "control": control.lstrip("\0"), "root": root},
        )
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(run_dir)
        raise
    env = run_env(dict(os.environ), run.id, root, uses)
    env.update(request.extra_env)
    env.setdefault("PYTHONUNBUFFERED", "1")  # the log is a file: show lines as they come
    env["GRID_HOME"] = settings.home
    plan = InitPlan(
        home=settings.home,
        run_dir=run_dir,
        root=root,
        uses=tuple(uses),
        command=tuple(request.command),
        env=env,
        cwd=request.cwd,
        log_path=log_path,
        control=control,
        isolated=isolated,
    )
    return run, plan


def foreground(client: DatastoreClient, run: RunInfo, plan: InitPlan) -> int:
    """Run in this process's care, streaming the log; return the script's exit code.
    Ctrl-C (or SIGTERM) stops the script; a second one kills the run. ``client`` is closed
    (the supervisor opens its own once the run is forked)."""
    client.close()
    sup = Supervisor(connect, run, plan, Settings.from_env().lease_seconds)
    try:
        sup.start()
        with _passing_signals(sup):
            return sup.follow(sys.stdout.buffer)
    finally:
        sup.close()


def detached(client: DatastoreClient, run: RunInfo, plan: InitPlan) -> RunInfo:
    """Hand the run to a detached supervisor; return once its script started. ``client`` is
    closed first: SQLite connections must not cross a fork.

    Raises:
        ConflictError: it could not start (a datastore failed to mount).
    """
    client.close()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the supervisor: detached from the terminal, its own connections
        os.close(read_end)
        leave_terminal(os.path.join(plan.run_dir, "supervisor.log"))
        code = 1
        try:
            with connect() as client:  # closed before the run is forked
                run = client.runs.update(run.id, pid=os.getpid())
            sup = Supervisor(connect, run, plan, Settings.from_env().lease_seconds)
            try:
                sup.start()
            except GridError as exc:
                os.write(write_end, f"error {exc.message}\n".encode())
                raise
            os.write(write_end, b"ok\n")
            os.close(write_end)
            with _passing_signals(sup):
                code = sup.follow(None)
            sup.close()
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write_end)
    answer = b""  # up to its newline: the run's processes hold copies of the pipe
    while b"\n" not in answer and (chunk := os.read(read_end, 4096)):
        answer += chunk
    os.close(read_end)
    answer = answer.strip()
    if answer != b"ok":
        text = answer.decode(errors="replace").removeprefix("error ")
        raise ConflictError(text or f"{run.kind} {run.id}: its supervisor exited at start")
    return run


@contextlib.contextmanager
def _passing_signals(sup: Supervisor) -> Iterator[None]:
    handlers: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        handlers[sig] = signal.signal(
            sig, lambda s, _f: sup.stop(signal.SIGINT if s == signal.SIGINT else signal.SIGTERM)
        )
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
