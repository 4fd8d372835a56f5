"""A succeeded version opened for random access by entry id: what a filesystem front-end needs.

Reads go through the store's ``RangeReader`` (verified blobs in an LRU, read-ahead for a
reader going forward), the same reader ``open()`` and fsspec use; this module adds the
version's manifest queries, each file's blob list (remembered for the most recent files) and
the hold that keeps the version from being deleted, and its objects from gc, while it is open.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from grid.errors import UsageError
from grid.records import VersionInfo
from grid.service.context import Context
from grid.service.resolve import held_until_closed
from grid.store.manifest import FILE, BlobLocation, Entry
from grid.store.manifest_reader import ManifestReader
from grid.store.reader import RangeReader, blob_starts
from grid.store.repository import Store
from grid.store.streaming import fetch_files, version_files

_BLOB_LISTS = 4096
_LISTED = 1 << 16  # rows kept from listings (about 200 bytes each)


class Snapshot:
    """Queries and reads on one version; thread-safe (the mount answers in several threads)."""

    def __init__(self, store: Store, manifest: ManifestReader, version: VersionInfo) -> None:
        self.version = version
        self.manifest = manifest
        self._store = store
        self._blobs: OrderedDict[int, tuple[list[BlobLocation], list[int]]] = OrderedDict()
        self._reader = RangeReader(store)
        self._lock = threading.Lock()
        self._listed: dict[int, tuple[Any, ...]] = {}  # entry id -> row, from child_rows

    def close(self) -> None:
        self._reader.close()
        self.manifest.close()
        self._store.readers.release(self.version.ref)

    def entry(self, entry_id: int) -> Entry:
        row = self._listed.pop(entry_id, None)  # listed a moment ago: no query
        return self.manifest.entry(entry_id) if row is None else self.manifest.entry_of(row)

    def child(self, parent_id: int, name: str) -> Entry:
        return self.manifest.child(parent_id, name)

    def children(self, parent_id: int, after: str = "", limit: int = 1000) -> list[Entry]:
        return self.manifest.children(parent_id, after, limit)

    def child_rows(
        self, parent_id: int, after: str = "", limit: int = 1000
    ) -> list[tuple[Any, ...]]:
        """Bare rows of a folder's children (``ManifestReader.child_rows``); each is kept for
        a while, so that the first ``entry`` of a listed file (a read after ``ls``, after
        ``os.walk``) needs no query."""
        rows = self.manifest.child_rows(parent_id, after, limit)
        if len(self._listed) > _LISTED:
            self._listed.clear()
        listed = self._listed
        for row in rows:
            listed[row[0]] = row
        return rows

    def path_of(self, entry_id: int) -> str:
        return self.manifest.path_of(entry_id)

    def _layout(self, entry: Entry) -> tuple[list[BlobLocation], list[int]]:
        with self._lock:
            hit = self._blobs.get(entry.id)
            if hit is not None:
                self._blobs.move_to_end(entry.id)
                return hit
        blobs = self.manifest.blobs(entry)
        hit = (blobs, blob_starts(blobs))
        with self._lock:
            self._blobs[entry.id] = hit
            if len(self._blobs) > _BLOB_LISTS:
                self._blobs.popitem(last=False)
        return hit

    def read(self, entry: Entry, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of a file from ``offset``, verified.

        Raises:
            IntegrityError: the stored bytes are damaged or missing.
        """
        blobs, starts = self._layout(entry)
        return self._reader.read(entry.id, blobs, starts, offset, size)

    def files(self, prefix: str = "") -> list[tuple[int, str, int, int]]:
        """``(entry id, path, size, pack)`` of every regular file under ``prefix``, in storage
        order; ``pack`` numbers the pack of the file's first blob (-1: an empty file), so
        that files read together can be chosen together."""
        numbers = {name: no for no, name in self.manifest.pack_numbers.items()}
        return [
            (entry_id, path, size, numbers[blobs[0].pack_id] if blobs else -1)
            for entry_id, path, size, blobs in version_files(self.manifest, prefix)
        ]

    def read_files(self, entry_ids: Sequence[int]) -> list[bytes]:
        """The whole content of each file of ``entry_ids``, verified, in that order; blobs
        that neighbour in a pack are read together (not through the blob cache: for loaders
        that read each file once an epoch).

        Raises:
            IntegrityError: a blob is damaged or missing; the message and ``path`` name the
                file.
            UsageError: an id is not a regular file's.
        """
        pending = []
        for entry_id in entry_ids:
            entry = self.manifest.entry(entry_id)
            if entry.kind != FILE:
                raise UsageError(f"entry {entry_id} is not a file", path=entry.path)
            pending.append((str(entry_id), self.manifest.blobs(entry)))
        fetched = fetch_files(self._store, pending, lambda key: self.manifest.path_of(int(key)))
        return [data for _, data in fetched]


def open_snapshot(ctx: Context, name: str, number: int | None) -> Snapshot:
    """Open a succeeded version (default: the latest) for random access."""
    with held_until_closed(ctx, name, number) as version:  # released by Snapshot.close
        return Snapshot(ctx.store, ctx.store.open_manifest(version.manifest_id), version)
