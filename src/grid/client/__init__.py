"""The one Python API (L4)."""

from grid.client.client import Client
from grid.client.connect import connect
from grid.client.interface import DatastoreClient, EntryLike, VersionReader
from grid.reports import CreateProgress
from grid.service.home_guard import NETWORK_FS, filesystem_type
from grid.service.runs import RunPort
from grid.service.snapshot import Snapshot
from grid.store.manifest import DIR, FILE, SYMLINK, Entry

__all__ = [
    "DIR",
    "FILE",
    "NETWORK_FS",
    "SYMLINK",
    "Client",
    "CreateProgress",
    "DatastoreClient",
    "Entry",
    "EntryLike",
    "RunPort",
    "Snapshot",
    "VersionReader",
    "connect",
    "filesystem_type",
]
