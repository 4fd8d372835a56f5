"""grid: versioned datasets ("datastores") you create from anywhere and attach to runs."""

from grid.client import Client
from grid.errors import (
    ConflictError,
    DatastoreNotFoundError,
    FormatVersionError,
    GridError,
    IntegrityError,
    Interrupted,
    InvalidNameError,
    NoSpaceError,
    NotFoundError,
    PathNotFoundError,
    SourceError,
    StorageError,
    UsageError,
    VersionNotFoundError,
    VersionNotReadyError,
)
from grid.records import DatastoreInfo, FileInfo, VersionInfo

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConflictError",
    "DatastoreInfo",
    "DatastoreNotFoundError",
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
    "StorageError",
    "UsageError",
    "VersionInfo",
    "VersionNotFoundError",
    "VersionNotReadyError",
    "__version__",
]
