"""`grid session create|list|stop|attach|detach`: JupyterLab with datastores at
/datastores/<name>/<version> and a `datastores` link in its notebook folder."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from grid.cli import render, runs_view
from grid.cli.run import find, stop_run
from grid.client import connect
from grid.records import RunInfo

app = typer.Typer(help="JupyterLab sessions with datastores attached.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Name = Annotated[str, typer.Argument(metavar="NAME", help="The session's name.")]
Datastores = Annotated[
    list[str] | None,
    typer.Option(
        "--datastore",
        metavar="NAME[:VERSION]",
        help="Attach a datastore (repeat for more); default version: the latest succeeded.",
    ),
]


def _summary(run: RunInfo) -> dict[str, str]:
    return {
        "name": run.name,
        "url": run.detail("url"),
        "token": run.detail("token"),
        "root": run.detail("root"),
    }


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="A name (default: a new one).")] = "",
    datastore: Datastores = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: a free one).")] = None,
    ip: Annotated[
        str, typer.Option("--ip", help="Address to listen on (default: loopback only).")
    ] = "127.0.0.1",
    as_json: Json = False,
) -> None:
    """Start JupyterLab in the background; print its URL with the token."""
    from grid.runs import session
    from grid.runs.plan import parse_spec

    wanted = [parse_spec(s) for s in datastore or []]
    with connect() as client:
        run = session.create(client, name, wanted, ip, port)
    if as_json:
        render.print_json(_summary(run))
        return
    print(f"session {render.safe_text(run.name)} started; datastores at {run.detail('root')}:")
    for a in run.datastores:
        print(f"  {render.safe_text(a.ref)} at {render.safe_text(a.path)}")
    print(run.detail("url"))


@app.command("list")
def list_(as_json: Json = False) -> None:
    """List your sessions with status and datastores."""
    with connect() as client:
        items = client.list_runs("session")
    if as_json:
        render.print_json([{**_summary(r), "status": r.status, "id": r.id} for r in items])
    elif not items:
        print("no sessions yet: `grid session create` starts one", file=sys.stderr)
    else:
        render.show(runs_view.runs_table(items))


@app.command()
def stop(name: Name) -> None:
    """Stop a session (JupyterLab shuts its kernels down; its notebooks stay)."""
    with connect() as client:
        run = stop_run(client, find(client, "session", name))
    print(f"session {render.safe_text(run.name)} {run.status}")


@app.command()
def attach(
    name: Name,
    datastore: Annotated[
        str, typer.Option("--datastore", metavar="NAME[:VERSION]", help="The datastore to add.")
    ],
) -> None:
    """Mount one more datastore into a running session (nothing restarts)."""
    from grid.runs import session
    from grid.runs.plan import parse_spec

    with connect() as client:
        use = session.attach(client, session.live(client, name), parse_spec(datastore))
    print(f"attached {render.safe_text(use.ref)} at {render.safe_text(use.path)}")


@app.command()
def detach(
    name: Name,
    datastore: Annotated[
        str, typer.Option("--datastore", metavar="NAME[:VERSION]", help="The datastore to drop.")
    ],
) -> None:
    """Unmount a datastore from a running session."""
    from grid.runs import session
    from grid.runs.plan import parse_spec

    wanted = parse_spec(datastore)
    with connect() as client:
        use = session.detach(client, session.live(client, name), wanted.name, wanted.version)
    print(f"detached {render.safe_text(use.ref)} from {render.safe_text(use.path)}")
