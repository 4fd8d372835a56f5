"""The `grid` command: wires the sub-commands and turns errors into one line and an exit code."""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

import typer

from grid.cli import datastore
from grid.cli.errors import report

app = typer.Typer(
    help="grid: versioned datastores for ML teams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(datastore.app, name="datastore")


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    storage_url: str | None = typer.Option(
        None,
        "--storage-url",
        metavar="s3://BUCKET/PREFIX",
        help="Keep packs and manifests in this S3-compatible store (default GRID_STORAGE_URL, "
        "else GRID_HOME/objects).",
    ),
) -> None:
    if debug:
        os.environ["GRID_DEBUG"] = "1"
    if storage_url:
        os.environ["GRID_STORAGE_URL"] = storage_url  # read with the other settings


def _sigterm(_signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the console script.

    Typer handles its own usage errors (exit 2) and exits through SystemExit; grid's errors
    and anything unexpected come out here and are shown as one line.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("GRID_DEBUG", "0") not in ("0", "")
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)  # the terminal went away: stop as for Ctrl-C
    try:
        app(args=args, prog_name="grid")
        code = 0
    except KeyboardInterrupt:
        print("grid: interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:
        code = report(exc, debug)
    sys.exit(code)
