"""The one Python API (L4).

Names are imported from their modules on first use: a command that needs only ``connect`` (or
the fast read path, ``grid.client.quick``) does not pay for the catalog, the store and HTTP.
"""

from __future__ import annotations

import typing

# eager (and cheap): ``grid.client.connect`` is also a module, which must not shadow it
from grid.client.connect import connect
from grid.lazy import lazy_names

if typing.TYPE_CHECKING:
    from grid.client.client import Client
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

_HOME = {
    "Client": "grid.client.client",
    "DatastoreClient": "grid.client.interface",
    "EntryLike": "grid.client.interface",
    "VersionReader": "grid.client.interface",
    "CreateProgress": "grid.reports",
    "NETWORK_FS": "grid.service.home_guard",
    "filesystem_type": "grid.service.home_guard",
    "RunPort": "grid.service.runs",
    "Snapshot": "grid.service.snapshot",
    "DIR": "grid.store.manifest",
    "FILE": "grid.store.manifest",
    "SYMLINK": "grid.store.manifest",
    "Entry": "grid.store.manifest",
}


__getattr__, __dir__ = lazy_names(__name__, _HOME)
