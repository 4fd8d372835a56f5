"""One table from error type to exit code and next step; the only place errors are shown."""

from __future__ import annotations

import errno
import os
import sys

from grid import errors as e
from grid.cli.render import safe_text


class StdoutError(Exception):
    """Writing to standard output failed: the reader left (EPIPE) or the disk is full."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(exc.strerror or str(exc))
        self.errno = exc.errno


# What a shell reports for a tool stopped by SIGPIPE, as `yes | head` stops `yes`.
EXIT_SIGPIPE = 141

# Most specific first. Exit codes are stable: scripts may rely on them. A message that carries
# its own next step (an interruption says how to resume) has no hint here, so as never to
# contradict it.
_TABLE: list[tuple[type[BaseException], int, str]] = [
    (e.InvalidNameError, 2, ""),
    (e.UsageError, 2, "see `grid{command} --help`"),
    (e.DatastoreNotFoundError, 3, "`grid datastore` lists the datastores"),
    (e.VersionNotFoundError, 3, "`grid datastore show NAME` lists its versions"),
    (e.PathNotFoundError, 3, "`grid datastore ls NAME:VERSION [DIR]` lists the paths"),
    (e.RunNotFoundError, 3, "`grid run list` and `grid session list` show them"),
    (e.JobNotFoundError, 3, "`grid job list` shows them"),
    (e.NotFoundError, 3, ""),
    (e.VersionNotReadyError, 4, "wait for it to succeed, or pick another version"),
    (e.ConflictError, 4, ""),
    (e.ArchiveError, 5, "no version was made; fix the archive, or the names in the source, first"),
    (e.SourceError, 5, "fix the source (permissions, network, credentials), then create again"),
    (e.UploadRefusedError, 6, "the server deleted what did not match; run the create again"),
    (e.FormatVersionError, 6, "upgrade grid: pip install -U grid-datastores"),
    (
        e.ReferenceChangedError,
        6,
        "the version referenced the object without a copy; restore it, or create a version "
        "that copies (without --no-copy)",
    ),
    (e.IntegrityError, 6, "the stored data is damaged; re-create the version from its source"),
    (e.StorageClaimedError, 8, ""),  # the message says what to do
    (e.DestinationError, 7, ""),  # ... and names the destination, never GRID_HOME
    (e.UnsafeHomeError, 7, ""),
    (e.NoSpaceError, 7, "free disk space where GRID_HOME lives (or set GRID_HOME), then retry"),
    (e.ServerUnreachableError, 10, "check the server's URL and that it runs, then retry"),
    (e.StorageError, 7, "check that GRID_HOME is writable and retry; --debug shows details"),
    (e.UnauthorizedError, 9, "`grid login` with a valid key, or ask an administrator for one"),
    (e.ForbiddenError, 9, ""),
    (e.Interrupted, 130, ""),
    (e.GridError, 1, "--debug shows details"),
]

# Errors a read-only GRID_HOME shows up as, depending on which file grid touched first.
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
# What grid writes directly under GRID_HOME (besides GRID_HOME itself), and the catalogs
# (catalog.db, catalog-SLUG.db with their -wal and -shm files).
_HOME_ENTRIES = ("objects", "index", "state", "cache", "tmp", "logs")


def _unwritable_home(exc: BaseException) -> str | None:
    """GRID_HOME (or what grid writes in it) when ``exc`` comes from it not being writable."""
    if isinstance(exc, (e.NoSpaceError, e.DestinationError, e.ServerUnreachableError)):
        return None
    if not isinstance(exc, e.StorageError) and not (
        isinstance(exc, OSError) and exc.errno in _DENIED
    ):
        return None
    from grid.settings import Settings

    home = Settings.from_env().home
    if not os.path.isdir(home):
        return None
    try:
        if not os.access(home, os.R_OK | os.W_OK | os.X_OK):
            return home
        catalogs = sorted(n for n in os.listdir(home) if n.startswith("catalog") and ".db" in n)
    except OSError:
        return home
    for entry in (*catalogs, *_HOME_ENTRIES):
        path = os.path.join(home, entry)
        if os.path.exists(path) and not os.access(path, os.W_OK):
            return path
    return None


def _one_line(exc: BaseException) -> str:
    """``exc``'s message as one line: a wrapped foreign error's multi-line text (SQLAlchemy
    adds the SQL and a link) cut to its first line, then control characters escaped (a path
    holding a newline stays whole and on the line)."""
    message = str(exc) if isinstance(exc, e.GridError) else f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        detail = str(cause).strip()
        if "\n" in detail and detail in message:
            message = message.replace(detail, detail.splitlines()[0].strip())
    return safe_text(message.strip())


def _command() -> str:
    """The command being run, as its help is asked for (``datastore``, ``key list``...)."""
    words = [a for a in sys.argv[1:] if not a.startswith("-")][:2]
    if words[:1] in (["datastore"], ["admin"], ["key"]):
        return " " + " ".join(words)
    return " " + words[0] if words else ""


def report(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` as one line on stderr (with a traceback if ``debug``); return the exit code.

    A wrapped foreign error is cut to its first line (``--debug`` shows the rest)."""
    if isinstance(exc, StdoutError):
        if exc.errno == errno.EPIPE:
            return EXIT_SIGPIPE  # the reader left (`| head`): quietly, as other tools do
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        print(f"grid: error: cannot write to standard output: {exc}", file=sys.stderr)
        return 7 if full else 1
    code, hint = 1, "this is a bug in grid; please report it with the output of --debug"
    for cls, table_code, table_hint in _TABLE:
        if isinstance(exc, cls):
            code, hint = table_code, table_hint
            break
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
        request_id = getattr(exc, "request_id", None)
        if request_id:
            print(f"grid: the server's request id: {request_id}", file=sys.stderr)
    message = _one_line(exc)
    denied = _unwritable_home(exc)
    if denied is not None:
        from grid.settings import Settings

        home, path = Settings.from_env().home, denied
        code = 7
        message = f"GRID_HOME {home} is not writable" + (f" ({path})" if path != home else "")
        hint = "make it writable, or set GRID_HOME to a folder you can write; --debug shows details"
    hint = hint.replace("{command}", _command())
    prefix = "grid: " if isinstance(exc, e.Interrupted) else "grid: error: "
    print(prefix + message + (f" ({hint})" if hint else ""), file=sys.stderr)
    return code
