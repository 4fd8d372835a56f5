"""`grid server` and `grid admin ...`: the operator's commands for team mode.

`grid admin` works on the database named by `--database-url` (or GRID_DATABASE_URL), the
same one the servers use; it does not go through a server.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from grid.cli import render
from grid.errors import UsageError
from grid.server.run import Admin

app = typer.Typer(help="Accounts of a team-mode server (on its database).", no_args_is_help=True)
user_app = typer.Typer(help="Users: create (with a first API key), list, disable.")
team_app = typer.Typer(help="Teams: create, add a member.")
app.add_typer(user_app, name="user")
app.add_typer(team_app, name="team")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="GRID_DATABASE_URL",
        metavar="URL",
        help="postgresql+psycopg://USER@HOST/DB, or sqlite:///PATH (default GRID_DATABASE_URL).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _admin(database_url: str | None) -> Admin:
    if not database_url:
        raise UsageError(
            "give the server's database: --database-url URL or GRID_DATABASE_URL",
            rule="grid admin works on the database the servers use",
        )
    return Admin(database_url)


@user_app.command("create")
def user_create(name: str, database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Add a user and print their first API key (shown this once)."""
    with _admin(database_url) as admin:
        user, key, _info = admin.create_user(name)
    if as_json:
        render.print_json({"username": user.name, "api_key": key})
        return
    print(f"created user {user.name}; API key (shown once, keep it secret):")
    print(key)


@user_app.command("list")
def user_list(database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Every user and team."""
    with _admin(database_url) as admin:
        users = admin.users()
    if as_json:
        render.print_json(users)
        return
    for u in users:
        state = " (disabled)" if u.disabled else ""
        members = f"  {', '.join(u.teams)}" if u.teams else ""
        print(f"{u.kind:5} {render.safe_text(u.name)}{state}{members}")


@user_app.command("disable")
def user_disable(name: str, database_url: DatabaseUrl = None) -> None:
    """Refuse every key of a user from now on, on every server."""
    with _admin(database_url) as admin:
        admin.disable_user(name)
    print(f"disabled {name}", file=sys.stderr)


@team_app.command("create")
def team_create(name: str, database_url: DatabaseUrl = None) -> None:
    """Add a team."""
    with _admin(database_url) as admin:
        admin.create_team(name)
    print(f"created team {name}", file=sys.stderr)


@team_app.command("add")
def team_add(team: str, user: str, database_url: DatabaseUrl = None) -> None:
    """Put a user in a team."""
    with _admin(database_url) as admin:
        t = admin.add_member(team, user)
    print(f"{team}: {', '.join(t.teams)}", file=sys.stderr)


def server(
    database_url: DatabaseUrl = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes.")] = 1,
    storage_url: Annotated[
        str | None,
        typer.Option(
            "--storage-url",
            envvar="GRID_SERVER_STORAGE",
            metavar="URL",
            help="Where packs and manifests live: s3://BUCKET/PREFIX (any S3-compatible store; "
            "endpoint and credentials from the AWS chain, e.g. AWS_ENDPOINT_URL) or a folder "
            "(default GRID_HOME/server-objects).",
        ),
    ] = None,
    allow_private_urls: Annotated[
        bool,
        typer.Option(
            "--allow-private-urls",
            help="Let imports fetch archive URLs on loopback, private and link-local addresses "
            "(refused by default: the server would reach inside its own network for users).",
        ),
    ] = False,
    s3_import_buckets: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-s3-import",
            metavar="BUCKET",
            help="A bucket the server may read for users' s3:// creates with its own "
            "credentials (repeatable; '*' for any but its storage's). Other s3:// sources are "
            "read by the user's machine with theirs.",
        ),
    ] = None,
    run_executor: Annotated[
        str | None,
        typer.Option(
            "--run-executor",
            metavar="local|slurm",
            help="Let the web page start runs and sessions with this executor, as this "
            "server's OS user (for a team that trusts each other; default: the page shows "
            "the command to type instead).",
        ),
    ] = None,
    no_jobs: Annotated[
        bool,
        typer.Option(
            "--no-jobs",
            help="Run no jobs (imports) in this server's processes: `grid worker` processes "
            "do (default: each server process also works on jobs).",
        ),
    ] = False,
) -> None:
    """Run the team-mode API server: accounts, keys and datastores."""
    from grid.server.run import serve
    from grid.server.storage import default_storage
    from grid.settings import Settings

    if run_executor not in (None, "local", "slurm"):
        raise UsageError(
            f"--run-executor {run_executor!r} is not an executor", rule="local or slurm"
        )
    home = Settings.from_env().home
    if not database_url:
        os.makedirs(home, exist_ok=True)
        database_url = f"sqlite:///{home}/server.db"  # a one-machine server
    storage_url = storage_url or default_storage(home)
    print(
        f"grid server on http://{host}:{port} (database {database_url}, storage {storage_url})",
        file=sys.stderr,
    )
    serve(
        database_url,
        storage_url,
        host,
        port,
        workers,
        allow_private_urls,
        tuple(s3_import_buckets or ()),
        run_executor,
        jobs=not no_jobs,
    )


def worker(
    database_url: DatabaseUrl = None,
    storage_url: Annotated[
        str | None,
        typer.Option(
            "--storage-url",
            envvar="GRID_SERVER_STORAGE",
            metavar="URL",
            help="The servers' storage (s3://BUCKET/PREFIX or a folder).",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Jobs run at once.")] = 1,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=1,
            metavar="SECONDS",
            help="How long a job this worker holds waits for it after it stopped renewing "
            "(kill -9, a machine gone) before another worker takes it over.",
        ),
    ] = 30.0,
) -> None:
    """Run jobs (imports) for the servers on the same database and storage, until stopped
    (a job follows the rules of the server that accepted it, e.g. --allow-private-urls)."""
    import signal
    import threading

    from grid.server.state import open_state
    from grid.server.worker import Worker

    if not database_url or not storage_url:
        raise UsageError(
            "give the servers' database and storage: --database-url URL --storage-url URL",
            rule="a worker works for the servers on one database and storage",
        )
    state = open_state(database_url, storage_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner = Worker(state, lease_seconds=lease)
    print(f"grid worker {runner.name}: {concurrency} at a time", file=sys.stderr)
    try:
        runner.serve(stop, concurrency)
    except KeyboardInterrupt:
        stop.set()
