"""One table from error type to exit code and next step; the only place errors are shown."""

from __future__ import annotations

import sys
import traceback

from grid import errors as e

# Most specific first. Exit codes are stable: scripts may rely on them.
_TABLE: list[tuple[type[BaseException], int, str]] = [
    (e.InvalidNameError, 2, ""),
    (e.UsageError, 2, "see `grid datastore --help`"),
    (e.DatastoreNotFoundError, 3, "`grid datastore` lists the datastores"),
    (e.VersionNotFoundError, 3, "`grid datastore show NAME` lists its versions"),
    (e.PathNotFoundError, 3, "`grid datastore ls NAME:VERSION [DIR]` lists the paths"),
    (e.VersionNotReadyError, 4, "wait for it to succeed, or pick another version"),
    (e.ConflictError, 4, ""),
    (e.ArchiveError, 5, "no version was made; the archive must be fixed or re-made"),
    (e.SourceError, 5, "fix the source (permissions, network, credentials), then create again"),
    (e.FormatVersionError, 6, "upgrade grid: pip install -U grid-datastores"),
    (e.IntegrityError, 6, "the stored data is damaged; re-create the version from its source"),
    (e.NoSpaceError, 7, "free disk space where GRID_HOME lives (or set GRID_HOME), then retry"),
    (e.StorageError, 7, "check that GRID_HOME is writable and retry; --debug shows details"),
    (e.Interrupted, 130, "run the same command again to make a new version"),
    (e.GridError, 1, "--debug shows details"),
]


def report(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` as one line on stderr (with a traceback if ``debug``); return the exit code."""
    code, hint = 1, "this is a bug in grid; please report it with the output of --debug"
    for cls, table_code, table_hint in _TABLE:
        if isinstance(exc, cls):
            code, hint = table_code, table_hint
            break
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc) if isinstance(exc, e.GridError) else f"{type(exc).__name__}: {exc}"
    print(f"grid: error: {message}" + (f" ({hint})" if hint else ""), file=sys.stderr)
    return code
