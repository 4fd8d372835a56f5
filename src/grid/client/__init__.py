"""The one Python API (L4)."""

from grid.client.client import Client
from grid.reports import CreateProgress
from grid.service.snapshot import Snapshot
from grid.store.manifest import DIR, FILE, SYMLINK, Entry

__all__ = ["DIR", "FILE", "SYMLINK", "Client", "CreateProgress", "Entry", "Snapshot"]
