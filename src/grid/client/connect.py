"""The one place that turns settings into a client."""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from grid.client.interface import DatastoreClient


def connect(home: str | None = None, *, cache_size: int | None = None) -> DatastoreClient:
    """The client the settings call for: the server the user logged in to (``grid login``,
    or ``GRID_URL`` and ``GRID_API_KEY``), else the embedded installation at ``home``
    (default ``$GRID_HOME`` or ``~/.grid``, configured by the ``GRID_*`` variables; see
    ``grid.settings``).

    ``cache_size``: bytes of verified blobs kept on disk for random reads (default
    ``GRID_CACHE_SIZE``).
    """
    from grid.client.credentials import load

    creds = load()
    if creds is not None:
        from grid.client.remote import RemoteClient

        return RemoteClient(creds.url, creds.api_key, home, cache_size=cache_size)
    from grid.client.client import Client

    return Client(home, cache_size=cache_size)
