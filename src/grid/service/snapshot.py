"""A succeeded version opened for random access by entry id: what a filesystem front-end needs.

Reads go blob by blob through a small in-memory LRU of verified blobs, so a sequential reader
fetches and checks each blob once however small its read calls are; a reader going forward
through a multi-blob file has the next blobs fetched and verified by background threads while
it consumes the current one.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from grid.records import VersionInfo
from grid.service.context import Context
from grid.service.resolve import held_until_closed
from grid.store.manifest import BlobLocation, Entry, ManifestReader
from grid.store.reader import blob_starts
from grid.store.repository import Store

_CACHE_BYTES = 64 << 20
_BLOB_LISTS = 4096
_READ_AHEAD = 4  # blobs (~1 MiB each) fetched ahead of a sequential reader


class Snapshot:
    """Queries and reads on one version; single-threaded use (one per FUSE loop)."""

    def __init__(self, store: Store, manifest: ManifestReader, version: VersionInfo) -> None:
        self.version = version
        self.manifest = manifest
        self._store = store
        self._blobs: OrderedDict[int, tuple[list[BlobLocation], list[int]]] = OrderedDict()
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._ends: OrderedDict[int, int] = OrderedDict()  # entry id -> end of its last read
        self._ahead: dict[bytes, Future[bytes]] = {}
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="grid-read-ahead")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.manifest.close()
        self._store.readers.release(self.version.ref)

    def entry(self, entry_id: int) -> Entry:
        return self.manifest.entry(entry_id)

    def child(self, parent_id: int, name: str) -> Entry:
        return self.manifest.child(parent_id, name)

    def children(self, parent_id: int, after: str = "", limit: int = 1000) -> list[Entry]:
        return self.manifest.children(parent_id, after, limit)

    def path_of(self, entry_id: int) -> str:
        return self.manifest.path_of(entry_id)

    def _layout(self, entry: Entry) -> tuple[list[BlobLocation], list[int]]:
        hit = self._blobs.get(entry.id)
        if hit is None:
            blobs = self.manifest.blobs(entry)
            hit = self._blobs[entry.id] = (blobs, blob_starts(blobs))
            if len(self._blobs) > _BLOB_LISTS:
                self._blobs.popitem(last=False)
        else:
            self._blobs.move_to_end(entry.id)
        return hit

    def _blob(self, loc: BlobLocation) -> bytes:
        data = self._cache.get(loc.digest)
        if data is not None:
            self._cache.move_to_end(loc.digest)
            return data
        pending = self._ahead.pop(loc.digest, None)
        data = pending.result() if pending is not None else self._store.read_blob(loc)
        self._cache[loc.digest] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > _CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old)
        return data

    def read(self, entry: Entry, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of a file from ``offset``, verified.

        Raises:
            IntegrityError: the stored bytes are damaged or missing.
        """
        blobs, starts = self._layout(entry)
        end = min(offset + size, entry.size)
        if len(blobs) == 1 and offset == 0 and end == entry.size:
            # A small file read whole (the common case): the kernel keeps the pages, so
            # keeping the blob here too would only churn the cache.
            hit = self._cache.get(blobs[0].digest)
            return hit if hit is not None else self._store.read_blob(blobs[0])
        if len(blobs) > 1 and self._ends.get(entry.id, 0) == offset:
            self._read_ahead(blobs, bisect.bisect_right(starts, end - 1))
        self._ends[entry.id] = end
        self._ends.move_to_end(entry.id)
        if len(self._ends) > _BLOB_LISTS:
            self._ends.popitem(last=False)
        out = []
        pos = offset
        while pos < end:
            i = bisect.bisect_right(starts, pos) - 1
            data = self._blob(blobs[i])
            start = pos - starts[i]
            piece = data[start : start + (end - pos)]
            out.append(piece)
            pos += len(piece)
        return b"".join(out)

    def _read_ahead(self, blobs: list[BlobLocation], first: int) -> None:
        for loc in blobs[first : first + _READ_AHEAD]:
            if loc.digest not in self._cache and loc.digest not in self._ahead:
                self._ahead[loc.digest] = self._pool.submit(self._store.read_blob, loc)
        while len(self._ahead) > 4 * _READ_AHEAD:  # readers that stopped early
            self._ahead.pop(next(iter(self._ahead))).cancel()


def open_snapshot(ctx: Context, name: str, number: int | None) -> Snapshot:
    """Open a succeeded version (default: the latest) for random access."""
    with held_until_closed(ctx, name, number) as version:  # released by Snapshot.close
        return Snapshot(ctx.store, ctx.store.open_manifest(version.manifest_id), version)
