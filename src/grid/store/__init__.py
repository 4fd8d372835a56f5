"""Content-addressed storage (L2): chunking, hashing, compression, packs, index, manifests, reads.

Knows nothing of users, the catalog or HTTP; it stores blobs into an ``ObjectStore``. The
names below load on first use, so a reader (``ls``, ``show``) never imports the ingest
pipeline; the ingest function itself is ``grid.store.ingest.ingest``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grid.lazy import lazy_names

if TYPE_CHECKING:
    from grid.store.ingest import IngestStats
    from grid.store.manifest_reader import ManifestReader
    from grid.store.manifest_writer import ManifestWriter
    from grid.store.repository import Store

__all__ = ["IngestStats", "ManifestReader", "ManifestWriter", "Store"]

_HOME = {
    "IngestStats": "grid.store.ingest",
    "ManifestReader": "grid.store.manifest_reader",
    "ManifestWriter": "grid.store.manifest_writer",
    "Store": "grid.store.repository",
}


__getattr__, __dir__ = lazy_names(__name__, _HOME)
