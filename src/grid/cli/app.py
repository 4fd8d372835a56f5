"""The `grid` command: wires the sub-commands (``grid.cli.commands``: each is imported only when
it runs) and turns errors into one line and an exit code."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn, TextIO, cast

import typer

from grid.cli.commands import LazyGroup
from grid.cli.errors import StdoutError, report

app = typer.Typer(
    cls=LazyGroup,
    help="grid: versioned datastores for ML teams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks on errors (also after the sub-command)."
    ),
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


_signalled = False


def _interrupt(_signum: int, _frame: object) -> NoReturn:
    """Ctrl-C, SIGTERM and a closed terminal all stop grid as Ctrl-C does."""
    global _signalled
    _signalled = True
    raise KeyboardInterrupt


class _Guarded:
    """Standard output whose failed writes raise StdoutError, so that they are told apart from
    the OSErrors of the work itself; everything else is the stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._stream, attr)

    def write(self, data: Any) -> Any:
        try:
            return self._stream.write(data)
        except OSError as exc:
            raise StdoutError(exc) from exc

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise StdoutError(exc) from exc

    @property
    def buffer(self) -> _Guarded:
        return _Guarded(self._stream.buffer)


_RUN_COMMANDS = ("list", "show", "logs", "stop")


def _split_debug(args: list[str]) -> tuple[list[str], bool]:
    """Take ``--debug`` out of ``args`` wherever it stands before ``--``, so that
    `grid datastore ls X --debug` works as `grid --debug datastore ls X` does."""
    end = args.index("--") if "--" in args else len(args)
    words = [a for a in args[:end] if not a.startswith("-")]
    if words[:1] == ["run"] and words[1:2] and words[1] not in _RUN_COMMANDS:
        # what follows `grid run [OPTIONS] SCRIPT` may be the script's own flags
        end = args.index("run") + 1
    kept = [a for a in args[:end] if a != "--debug"] + args[end:]
    return kept, len(kept) != len(args)


def _drop_stdout() -> None:
    """Point file descriptor 1 at /dev/null: what is still buffered must not fail again (and
    print a traceback) when Python flushes it at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the console script.

    Typer handles its own usage errors (exit 2) and exits through SystemExit; grid's errors
    and anything unexpected come out here and are shown as one line.
    """
    from grid.client import api_session

    api_session.WITHOUT_TRIO = True  # (see there)
    args, debug_flag = _split_debug(sys.argv[1:] if argv is None else argv)
    if debug_flag:
        os.environ["GRID_DEBUG"] = "1"
    debug = os.environ.get("GRID_DEBUG", "0") not in ("0", "")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    stdout = sys.stdout
    sys.stdout = cast(TextIO, _Guarded(stdout))
    try:
        try:
            app(args=args, prog_name="grid")
            code = 0
        except SystemExit as done:  # Typer's way out, also on success
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
            if code == 130 and _signalled:  # Typer ends a KeyboardInterrupt silently
                print("grid: interrupted", file=sys.stderr)
        sys.stdout.flush()
    except StdoutError as exc:
        _drop_stdout()
        code = report(exc, debug)
    except KeyboardInterrupt:
        print("grid: interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:
        code = report(exc, debug)
    finally:
        sys.stdout = stdout
    sys.exit(code)
