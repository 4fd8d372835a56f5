"""grid: versioned datasets ("datastores") you create from anywhere and attach to runs."""

from grid.client import Client, DatastoreClient, connect
from grid.errors import (
    ConflictError,
    DatastoreNotFoundError,
    DestinationError,
    DestinationFullError,
    FormatVersionError,
    GridError,
    IntegrityError,
    Interrupted,
    InvalidNameError,
    NoSpaceError,
    NotFoundError,
    PathNotFoundError,
    SourceError,
    StorageClaimedError,
    StorageError,
    UnsafeHomeError,
    UsageError,
    VersionNotFoundError,
    VersionNotReadyError,
)
from grid.records import DatastoreInfo, FileInfo, VersionInfo

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConflictError",
    "DatastoreClient",
    "DatastoreInfo",
    "DatastoreNotFoundError",
    "DestinationError",
    "DestinationFullError",
    "FileInfo",
    "FormatVersionError",
    "GridError",
    "IntegrityError",
    "Interrupted",
    "InvalidNameError",
    "NoSpaceError",
    "NotFoundError",
    "PathNotFoundError",
    "SourceError",
    "StorageClaimedError",
    "StorageError",
    "UnsafeHomeError",
    "UsageError",
    "VersionInfo",
    "VersionNotFoundError",
    "VersionNotReadyError",
    "__version__",
    "connect",
]
