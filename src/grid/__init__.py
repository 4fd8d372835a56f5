"""grid: versioned datasets ("datastores") you create from anywhere and attach to runs.

Every name below is imported on first use, so that ``import grid`` (and the ``grid`` command,
which starts with it) stays fast; ``from grid import Client`` and ``grid.Client`` work as ever.
"""

from __future__ import annotations

import typing

from grid.lazy import lazy_names

if typing.TYPE_CHECKING:
    from grid.client.client import Client
    from grid.client.connect import connect
    from grid.client.interface import DatastoreClient
    from grid.errors import (
        ArchiveError,
        ConflictError,
        DatastoreNotFoundError,
        DestinationError,
        DestinationFullError,
        ForbiddenError,
        FormatVersionError,
        GridError,
        IntegrityError,
        Interrupted,
        InvalidNameError,
        JobCancelledError,
        JobNotFoundError,
        NoSpaceError,
        NotFoundError,
        PathNotFoundError,
        ReferenceChangedError,
        RunNotFoundError,
        ServerUnreachableError,
        SourceError,
        StorageClaimedError,
        StorageError,
        UnauthorizedError,
        UnsafeHomeError,
        UploadRefusedError,
        UsageError,
        VersionNotFoundError,
        VersionNotReadyError,
    )
    from grid.records import DatastoreInfo, FileInfo, JobInfo, ScheduleInfo, VersionInfo

__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "Client",
    "ConflictError",
    "DatastoreClient",
    "DatastoreInfo",
    "DatastoreNotFoundError",
    "DestinationError",
    "DestinationFullError",
    "FileInfo",
    "ForbiddenError",
    "FormatVersionError",
    "GridError",
    "IntegrityError",
    "Interrupted",
    "InvalidNameError",
    "JobCancelledError",
    "JobInfo",
    "JobNotFoundError",
    "NoSpaceError",
    "NotFoundError",
    "PathNotFoundError",
    "ReferenceChangedError",
    "RunNotFoundError",
    "ScheduleInfo",
    "ServerUnreachableError",
    "SourceError",
    "StorageClaimedError",
    "StorageError",
    "UnauthorizedError",
    "UnsafeHomeError",
    "UploadRefusedError",
    "UsageError",
    "VersionInfo",
    "VersionNotFoundError",
    "VersionNotReadyError",
    "__version__",
    "connect",
]

_CLIENT = ("Client", "DatastoreClient", "connect")
_RECORDS = ("DatastoreInfo", "FileInfo", "JobInfo", "ScheduleInfo", "VersionInfo")
# name -> the module it comes from; every other exported name is an error class
_HOME = {
    **dict.fromkeys(_CLIENT, "grid.client"),
    **dict.fromkeys(_RECORDS, "grid.records"),
    **{n: "grid.errors" for n in __all__ if n not in (*_CLIENT, *_RECORDS, "__version__")},
}


__getattr__, __dir__ = lazy_names(__name__, _HOME)
