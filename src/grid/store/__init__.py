"""Content-addressed storage (L2): chunking, hashing, compression, packs, index, manifests, reads.

Knows nothing of users, the catalog or HTTP; it stores blobs into an ``ObjectStore``. The
names below load on first use, so a reader (``ls``, ``show``) never imports the ingest
pipeline; the ingest function itself is ``grid.store.ingest.ingest``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grid.store.ingest import IngestStats
    from grid.store.manifest import ManifestReader, ManifestWriter
    from grid.store.repository import Store

__all__ = ["IngestStats", "ManifestReader", "ManifestWriter", "Store"]

_HOMES = {
    "IngestStats": "grid.store.ingest",
    "ManifestReader": "grid.store.manifest",
    "ManifestWriter": "grid.store.manifest",
    "Store": "grid.store.repository",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'grid.store' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
