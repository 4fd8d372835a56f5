"""The server reading a version for the web pages (a folder's entries, a file's bytes, a
diff), with the same code the embedded client reads with (``grid.service.browse``).

Each owner gets a cache folder under the server's scratch space, where manifests fetched from
storage stay between requests: a page of a 100,000-entry folder costs one fetch of the
manifest, then indexed reads.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from grid.objects.prefixed import PrefixedStore
from grid.server.access import OwnerView
from grid.server.state import ServerState
from grid.service.context import Context
from grid.store import Store


def owner_context(state: ServerState, view: OwnerView, scratch: str | None = None) -> Context:
    """The embedded machinery on ``view``'s part of the server's storage; ``scratch``: a
    folder of its own (an import's), else the owner's reading cache."""
    folder = scratch or os.path.join(state.scratch, "reading", str(view.id))
    objects = PrefixedStore(state.objects, view.name)
    store = Store(objects, os.path.join(folder, "index.sqlite"), os.path.join(folder, "cache"))
    return Context(
        view.catalog,
        store,
        os.path.join(folder, "tmp"),
        allow_private_urls=state.allow_private_urls,
        storage=f"the server's storage ({view.name})",
        host_id=socket.gethostname(),
        server_checked=True,
    )


@contextmanager
def reading(state: ServerState, view: OwnerView) -> Iterator[Context]:
    """``owner_context`` for one request (its store closed after; the catalog is shared)."""
    ctx = owner_context(state, view)
    try:
        yield ctx
    finally:
        ctx.store.close()
