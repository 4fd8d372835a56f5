"""Content-addressed storage (L2): chunking, hashing, compression, packs, index, manifests, reads.

Knows nothing of users, the catalog or HTTP; it stores blobs into an ``ObjectStore``.
"""

from grid.store.ingest import IngestStats, ingest
from grid.store.manifest import ManifestReader, ManifestWriter
from grid.store.repository import Store

__all__ = ["IngestStats", "ManifestReader", "ManifestWriter", "Store", "ingest"]
