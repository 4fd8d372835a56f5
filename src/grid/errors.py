"""The whole exception tree of grid; every layer raises these, front-ends translate them once.

    GridError
    ├── UsageError            bad input; ``rule`` says which rule was broken
    │   └── InvalidNameError
    ├── NotFoundError         (also a LookupError)
    │   ├── DatastoreNotFoundError
    │   ├── VersionNotFoundError
    │   ├── PathNotFoundError
    │   ├── RunNotFoundError
    │   └── JobNotFoundError
    ├── ConflictError         the request clashes with current state
    │   ├── VersionNotReadyError
    │   └── JobCancelledError     a job's owner cancelled it while it ran
    ├── SourceError           the data to import could not be read
    │   └── ArchiveError      an archive is hostile, corrupt, truncated or over a limit
    ├── IntegrityError        stored bytes do not match their id, or the format is unknown
    │   ├── FormatVersionError
    │   ├── ReferenceChangedError an object a --no-copy version references changed or went
    │   └── UploadRefusedError    a team-mode server refused an upload that does not match
    ├── StorageError          the object store failed; ``transient`` says if a retry may help
    │   ├── NoSpaceError
    │   ├── DestinationError      a download's destination cannot be written
    │   │   └── DestinationFullError (also a NoSpaceError)
    │   ├── StorageClaimedError   the storage belongs to another installation's catalog
    │   ├── UnsafeHomeError       GRID_HOME is on a network filesystem another host uses
    │   └── ServerUnreachableError  the team-mode server or its object store cannot be reached
    ├── UnauthorizedError     no API key, or an unknown, expired or revoked one
    ├── ForbiddenError        a signed-in page's request without its CSRF token
    └── Interrupted           the user stopped the operation (Ctrl-C, SIGTERM)

Foreign exceptions (OSError, sqlite3, SQLAlchemy) never cross a layer: they are wrapped with
``raise ... from exc`` where they are caught.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Mapping

_BY_CODE: dict[str, type[GridError]] = {}


class GridError(Exception):
    """Root of every error grid raises on purpose.

    ``code`` is stable and unique per class: a server sends it (with the message and the
    attributes given here) and a remote client rebuilds the same exception with ``rebuild``.
    """

    code = "error"
    request_id: str | None = None  # set on one rebuilt from a server's answer

    def __init__(self, message: str, **attrs: object) -> None:
        super().__init__(message)
        self.message = message
        self.attrs = attrs
        for key, value in attrs.items():
            setattr(self, key, value)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__ or cls.code in _BY_CODE:
            raise TypeError(f"{cls.__name__} needs a code of its own")
        _BY_CODE[cls.code] = cls

    def to_dict(self) -> dict[str, object]:
        """``{"code", "message", "attrs"}``: what crosses the wire."""
        return {"code": self.code, "message": self.message, "attrs": dict(self.attrs)}

    def __str__(self) -> str:
        return self.message


class UsageError(GridError):
    """Bad input from the caller; ``rule`` states the rule that was broken."""

    code = "usage"

    rule: str = ""


class InvalidNameError(UsageError):
    """A datastore name or a ``NAME:VERSION`` reference breaks the naming rule."""

    code = "invalid_name"


class NotFoundError(GridError, LookupError):
    """Something named by the caller does not exist."""

    code = "not_found"


class DatastoreNotFoundError(NotFoundError):
    """No datastore with that name."""

    code = "datastore_not_found"

    datastore: str = ""


class VersionNotFoundError(NotFoundError):
    """The datastore exists but not that version."""

    code = "version_not_found"

    datastore: str = ""
    version: int = 0


class PathNotFoundError(NotFoundError):
    """No such path inside a version."""

    code = "path_not_found"

    path: str = ""


class RunNotFoundError(NotFoundError):
    """No run or session with that id or name (of the caller)."""

    code = "run_not_found"

    run: str = ""


class JobNotFoundError(NotFoundError):
    """No job with that id (of the caller's owners)."""

    code = "job_not_found"

    job: int = 0


class ConflictError(GridError):
    """The request clashes with the current state (e.g. a version still uploading)."""

    code = "conflict"


class VersionNotReadyError(ConflictError):
    """The version exists but has not succeeded, so it cannot be read."""

    code = "version_not_ready"

    status: str = ""


class JobCancelledError(ConflictError):
    """A job was cancelled (``grid job cancel``) while it ran: its work stopped there."""

    code = "job_cancelled"

    job: int = 0


class SourceError(GridError):
    """The source (folder, file, archive, bucket) could not be read; ``path`` names the entry."""

    code = "source"

    path: str = ""


class ArchiveError(SourceError):
    """An archive was refused: hostile (absolute or escaping paths, devices, duplicates),
    corrupt, truncated, or over a size, count or ratio limit; ``path`` names the entry."""

    code = "archive_refused"


class IntegrityError(GridError):
    """Stored bytes do not match their BLAKE3 id, or stored metadata is damaged."""

    code = "integrity"

    digest: str = ""


class FormatVersionError(IntegrityError):
    """The stored data was written by a newer, unknown format version."""

    code = "format_version"


class ReferenceChangedError(IntegrityError):
    """An object a ``--no-copy`` version references (pinned by version id, or by ETag and
    size) was overwritten or deleted: its pinned bytes cannot be read; ``key`` names it."""

    code = "reference_changed"

    key: str = ""


class UploadRefusedError(IntegrityError):
    """A team-mode server refused what a client uploaded: missing, damaged, or not matching
    the manifest (the bad object is deleted; nothing else is touched)."""

    code = "upload_refused"


class StorageError(GridError):
    """The object store failed. Only a retry wrapper may act on ``transient``."""

    code = "storage"

    transient: bool = False
    key: str = ""


class NoSpaceError(StorageError):
    """The disk holding GRID_HOME or the object directory is full."""

    code = "no_space"


class DestinationError(StorageError):
    """A download's destination (not GRID_HOME) cannot be written; ``path`` names the file."""

    code = "destination"

    path: str = ""


class DestinationFullError(DestinationError, NoSpaceError):
    """The destination's disk is full."""

    code = "destination_full"


class StorageClaimedError(StorageError):
    """The storage prefix was claimed by another installation's catalog: writing there would
    let each treat the other's objects as garbage."""

    code = "storage_claimed"

    catalog_id: str = ""


class UnsafeHomeError(StorageError):
    """GRID_HOME is on a network filesystem that another host already uses: its SQLite files
    cannot be shared between machines safely."""

    code = "unsafe_home"


class ServerUnreachableError(StorageError):
    """The team-mode server (or its object store) cannot be reached, or broke off."""

    code = "server_unreachable"


class UnauthorizedError(GridError):
    """No API key, or one that is unknown, expired, revoked or of a disabled user."""

    code = "unauthorized"


class ForbiddenError(GridError):
    """A request the caller may not make this way: one of a signed-in browser that changes
    something without the page's CSRF token."""

    code = "forbidden"


class Interrupted(GridError):
    """The operation was stopped by the user (Ctrl-C or SIGTERM)."""

    code = "interrupted"


def storage_error(exc: OSError, doing: str, **attrs: object) -> StorageError:
    """Translate an OSError met while ``doing`` something: NoSpaceError for a full disk or
    quota (so the CLI says to free space), StorageError otherwise."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpaceError(f"no space left to {doing}: {exc.strerror}", **attrs)
    return StorageError(f"cannot {doing}: {exc.strerror or exc}", **attrs)


def sqlite_error(exc: sqlite3.Error, doing: str, **attrs: object) -> StorageError:
    """Translate an SQLite error met while ``doing`` something: NoSpaceError when the disk
    under the database is full (SQLITE_FULL), StorageError otherwise."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
        return NoSpaceError(f"no space left to {doing}: {exc}", **attrs)
    return StorageError(f"cannot {doing}: {exc}", **attrs)


_BY_CODE[GridError.code] = GridError


def rebuild(
    code: str,
    message: str,
    attrs: Mapping[str, object] | None = None,
    request_id: str | None = None,
) -> GridError:
    """The exception ``to_dict`` described (a GridError for a code this version does not
    know: a newer server's); ``request_id``: the server's id of the request that failed
    (kept as the exception's ``request_id``, for ``--debug``)."""
    exc = _BY_CODE.get(code, GridError)(message, **dict(attrs or {}))
    exc.request_id = request_id
    return exc


def codes() -> dict[str, type[GridError]]:
    """Every error code and its class."""
    return dict(_BY_CODE)
