"""`grid run SCRIPT ...` and `grid run list|show|logs|stop`: scripts with datastores attached
at /datastores/<name>/<version>, on this machine or through SLURM."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from grid.cli import render, runs_view
from grid.client import DatastoreClient, connect
from grid.errors import ConflictError, RunNotFoundError, UsageError
from grid.records import RUN_LIVE, RunInfo

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunId = Annotated[str, typer.Argument(metavar="ID", help="The run's id (or name).")]


class _ScriptOrCommand(TyperGroup):
    """`grid run list` is a command; `grid run train.py` (or `grid run --datastore ...`)
    starts a script."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ScriptOrCommand,
    help="Run a script with datastores attached: grid run [--datastore NAME[:VERSION]]... "
    "SCRIPT [ARGS]...; and list, show, follow and stop runs.",
    no_args_is_help=True,
)


def find(client: DatastoreClient, kind: str, key: str) -> RunInfo:
    """The caller's run (or session) ``key``: an id, or the newest with that name."""
    items = client.list_runs(kind)
    if key.isascii() and key.isdigit():
        match = [r for r in items if r.id == int(key)]
    else:
        match = [r for r in items if r.name == key]
    if not match:
        raise RunNotFoundError(f"no {kind} {key!r}", run=key)
    return match[-1]


@app.command(
    "start",
    hidden=True,
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def start(
    script: Annotated[str, typer.Argument(help="A .py file (run with this Python) or a program.")],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments of the script.")] = None,
    datastore: Annotated[
        list[str] | None,
        typer.Option(
            "--datastore",
            metavar="NAME[:VERSION][:MOUNT_DIR]",
            help="Attach a datastore (repeat for more); default version: the latest succeeded; "
            "default folder: /datastores/NAME/VERSION.",
        ),
    ] = None,
    datastore_name: Annotated[str | None, typer.Option("--datastore_name", hidden=True)] = None,
    datastore_version: Annotated[
        int | None, typer.Option("--datastore_version", hidden=True)
    ] = None,
    datastore_mount_dir: Annotated[
        str | None, typer.Option("--datastore_mount_dir", hidden=True)
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", help="local (this machine) or slurm (sbatch).")
    ] = "local",
    name: Annotated[str, typer.Option("--name", help="A name for the run.")] = "",
    detach: Annotated[
        bool, typer.Option("--detach", help="Print the run's id and return at once.")
    ] = False,
    partition: Annotated[str | None, typer.Option("--partition", help="SLURM partition.")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", help="SLURM time limit.")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="SLURM GPUs.")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="SLURM CPUs per task.")] = None,
    mem: Annotated[str | None, typer.Option("--mem", help="SLURM memory, e.g. 16G.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Run SCRIPT with datastores attached; exit with its exit code."""
    if debug:
        os.environ["GRID_DEBUG"] = "1"
    from grid.runs import launch
    from grid.runs.plan import Wanted, command_of, parse_spec

    wanted = [parse_spec(s) for s in datastore or []]
    if datastore_name:
        wanted.append(Wanted(datastore_name, datastore_version, datastore_mount_dir))
    elif datastore_version is not None or datastore_mount_dir is not None:
        raise UsageError(
            "--datastore_version and --datastore_mount_dir need --datastore_name",
            rule="--datastore_name NAME [--datastore_version V] [--datastore_mount_dir DIR]",
        )
    if executor not in ("local", "slurm"):
        raise UsageError(f"unknown executor {executor!r}", rule="--executor local|slurm")
    slurm = {"partition": partition, "time": time_limit, "gpus": gpus, "cpus": cpus, "mem": mem}
    if executor == "local" and any(v is not None for v in slurm.values()):
        raise UsageError(
            "--partition, --time, --gpus, --cpus and --mem are SLURM options",
            rule="use them with --executor slurm",
        )
    command = command_of(script, list(args or []))
    request = launch.Request("run", name, command, wanted)
    with connect() as client:
        if executor == "slurm":
            from grid.runs import slurm as slurm_executor

            code = slurm_executor.submit(client, request, slurm, detach=detach)
            if code is not None:
                raise typer.Exit(code)
            return
        run, plan = launch.prepare(client, request)
        if detach:
            launch.detached(client, run, plan)
            print(run.id)
            return
        print(f"grid: run {run.id} ({run.name}) started", file=sys.stderr)
        code = launch.foreground(client, run, plan)
    raise typer.Exit(code)


@app.command("list")
def list_(as_json: Json = False) -> None:
    """List your runs: id, name, status, exit code, datastores, executor, host, start."""
    with connect() as client:
        items = client.list_runs("run")
    if as_json:
        render.print_json(items)
    elif not items:
        print("no runs yet: `grid run SCRIPT` starts one", file=sys.stderr)
    else:
        render.show(runs_view.runs_table(items))


@app.command()
def show(run_id: RunId, as_json: Json = False) -> None:
    """Show a run: command, datastores and versions, executor, host, status, exit code, times."""
    with connect() as client:
        run = find(client, "run", run_id)
    if as_json:
        render.print_json(run)
        return
    for key, value in runs_view.describe(run):
        print(f"{key:<10} {value}")


@app.command()
def logs(
    run_id: RunId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
) -> None:
    """Print a run's output (stdout and stderr, as the script wrote them)."""
    with connect() as client:
        run = find(client, "run", run_id)
        print_log(client, run, follow)


def print_log(client: DatastoreClient, run: RunInfo, follow: bool) -> None:
    """Copy ``run``'s log to stdout; with ``follow``, until the run ends."""
    from grid.runs.local import copy_new, open_log

    out = sys.stdout.buffer
    log = open_log(run.log_path)
    if log is None and not (follow and run.status == "queued"):
        raise ConflictError(
            f"the log of {run.kind} {run.id} is not readable here ({run.log_path}); "
            f"it ran on {run.host}"
        )
    asked = time.monotonic()
    while True:
        log = log or open_log(run.log_path)
        copy_new(log, out)
        if not follow:
            break
        time.sleep(0.1)
        if time.monotonic() - asked > 1:  # the registry once a second, the file more often
            asked = time.monotonic()
            run = find(client, run.kind, str(run.id))
            follow = run.status in RUN_LIVE  # once ended: one more read gets its last words
    if log is not None:
        log.close()


@app.command()
def stop(run_id: RunId) -> None:
    """Stop a run: its script gets SIGTERM, and is killed 10 s later if still there."""
    with connect() as client:
        run = stop_run(client, find(client, "run", run_id))
    print(f"run {run.id} ({render.safe_text(run.name)}) {run.status}")


def stop_run(client: DatastoreClient, run: RunInfo, wait: float = 20.0) -> RunInfo:
    """Ask the supervisor of ``run`` to stop it and wait until it is recorded ended."""
    from grid.settings import Settings

    if run.status not in RUN_LIVE:
        raise ConflictError(f"{run.kind} {run.id} ({run.name}) already ended: {run.status}")
    if run.executor == "slurm" and run.job_id:
        from grid.runs import slurm as slurm_executor

        slurm_executor.cancel(run)
    elif run.host != Settings.from_env().host_id:
        raise ConflictError(
            f"{run.kind} {run.id} runs on {run.host}: stop it there (`grid {run.kind} stop`)"
        )
    else:
        try:
            os.kill(run.pid, signal.SIGTERM)
        except ProcessLookupError:
            return client.runs.update(run.id, status="lost")
    deadline = time.monotonic() + wait
    while run.status in RUN_LIVE and time.monotonic() < deadline:
        time.sleep(0.1)
        run = find(client, run.kind, str(run.id))
    return run
