"""The one place that turns settings into a client."""

from __future__ import annotations

from grid.client.client import Client
from grid.client.interface import DatastoreClient


def connect(home: str | None = None, *, cache_size: int | None = None) -> DatastoreClient:
    """The client the settings call for: today the embedded installation at ``home``
    (default ``$GRID_HOME`` or ``~/.grid``, configured by the ``GRID_*`` variables; see
    ``grid.settings``); in team mode, the server the user logged in to.

    ``cache_size``: bytes of verified blobs kept on disk for random reads (default
    ``GRID_CACHE_SIZE``).
    """
    return Client(home, cache_size=cache_size)
