"""A version that references a source's objects where they are (``--no-copy``), instead of
copying them into packs: the manifest lists each file as pieces of its pinned object.

Each file's object is pinned (``grid.objects.pinned.Pin``: version id, else ETag and size) and
split into pieces of ``PIECE`` bytes, each a blob row whose "pack" is the pin and whose codec
is ``PINNED``; its id is a BLAKE3 of the pin and the piece's place, never a content hash, so
it is unique to the pinned object and never matches stored content (the blob index never holds
one). Every reader then works unchanged: ``Store`` reads a pinned piece from the object itself
and checks the pin. Nothing is read from the source and nothing is stored but the manifest.
"""

from __future__ import annotations

import io
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from grid.ids import TreeHasher, digest_of
from grid.store.chunker import SMALL_FILE_MAX, iter_chunks
from grid.store.compression import PINNED
from grid.store.ingest import IngestStats
from grid.store.manifest import DIR, FILE, ROOT_ID, BlobLocation, encode_blobs
from grid.store.manifest_writer import ManifestWriter
from grid.tree import Source

if TYPE_CHECKING:
    from grid.store.repository import Store

PIECE = 4 << 20  # bytes of a referenced object read (and cached) as one piece
_REPORT_EVERY = 1000


def pieces(pin_name: str, size: int, pack_no: int) -> list[tuple[int, bytes, int, int, int, int]]:
    """The blob rows of a pinned object of ``size`` bytes, its pin numbered ``pack_no``."""
    rows = []
    for offset in range(0, size, PIECE):
        length = min(PIECE, size - offset)
        digest = digest_of(f"grid-pin\0{pin_name}\0{offset}\0{length}".encode())
        rows.append((pack_no, digest, offset, length, length, PINNED))
    return rows


def reference(
    source: Source,
    manifest: ManifestWriter,
    progress: Callable[[IngestStats], None] | None = None,
) -> IngestStats:
    """Write the manifest of ``source`` (whose entries' ``location`` is a pin's name, see
    ``grid.sources.s3``) with every file referenced, none read."""
    stats = IngestStats()
    tree = TreeHasher()
    dir_ids = {"": ROOT_ID}
    for entry in source.entries():
        parent = dir_ids[entry.parent]
        if stat.S_ISDIR(entry.mode):
            dir_ids[entry.path] = manifest.add(
                parent, entry.name, DIR, 0, entry.mode, entry.mtime_ns
            )
            stats.dirs += 1
            tree.add(entry.path, DIR, entry.mode, entry.mtime_ns, 0, None, [])
            continue
        rows = pieces(entry.location, entry.size, manifest.pack_number(entry.location))
        manifest.add(
            parent,
            entry.name,
            FILE,
            entry.size,
            entry.mode,
            entry.mtime_ns,
            None,
            encode_blobs(rows),
        )
        tree.add(
            entry.path, FILE, entry.mode, entry.mtime_ns, entry.size, None, [r[1] for r in rows]
        )
        stats.files += 1
        stats.bytes += entry.size
        if progress is not None and stats.files % _REPORT_EVERY == 0:
            progress(stats)
    stats.tree_digest = tree.hexdigest()
    if progress is not None:
        progress(stats)
    return stats


def content_ids(store: Store, blobs: list[BlobLocation], size: int) -> list[bytes]:
    """The blob ids a copying create would give a file of ``size`` bytes made of ``blobs``:
    as they are for stored blobs; for a referenced object, its pinned bytes read and cut as
    the ingest cuts them (what ``diff`` compares a referenced file with a copied one by)."""
    if not any(b.codec == PINNED for b in blobs):
        return [b.digest for b in blobs]
    if size == 0:
        return []
    stream = _Pieces(store, blobs)
    if size <= SMALL_FILE_MAX:
        return [digest_of(stream.read())]
    return [digest_of(chunk) for chunk in iter_chunks(io.BufferedReader(stream, 1 << 20))]


class _Pieces(io.RawIOBase):
    """A file's blobs read one after the other (verified, or pin-checked) as a raw file."""

    def __init__(self, store: Store, blobs: list[BlobLocation]) -> None:
        self._store, self._blobs, self._next, self._data = store, blobs, 0, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._data and self._next < len(self._blobs):
            self._data = memoryview(self._store.read_blob(self._blobs[self._next], cached=False))
            self._next += 1
        n = min(len(buffer), len(self._data))
        memoryview(buffer).cast("B")[:n] = self._data[:n]
        self._data = self._data[n:]
        return n
