"""Reading files back: a seekable file object over a manifest entry, and whole-version streaming
in storage order. Every byte handed out has been checked against its blob's BLAKE3 id.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

from grid.store.manifest import FILE, BlobLocation, Entry, ManifestReader

if TYPE_CHECKING:
    from grid.store.repository import Store

# Coalesce neighbouring blobs of one pack into reads of up to this size when streaming.
_SPAN = 16 << 20


def blob_starts(blobs: list[BlobLocation]) -> list[int]:
    """Offset in the file at which each blob begins (bisect it to find the blob for a byte)."""
    starts, total = [], 0
    for blob in blobs:
        starts.append(total)
        total += blob.raw_length
    return starts


class BlobFile(io.RawIOBase):
    """A read-only, seekable view of one file's content; fetches one verified blob at a time."""

    def __init__(self, store: Store, blobs: list[BlobLocation], name: str = "") -> None:
        self._store = store
        self._blobs = blobs
        self._starts = blob_starts(blobs)
        self._size = sum(b.raw_length for b in blobs)
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def _blob(self, index: int) -> bytes:
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, self._store.read_blob(self._blobs[index]))
        return self._cached[1]

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            data = self._blob(index)
            start = self._pos - self._starts[index]
            n = min(len(view) - done, len(data) - start)
            view[done : done + n] = data[start : start + n]
            done += n
            self._pos += n
        return done


def stream_files(
    store: Store, manifest: ManifestReader, prefix: str = ""
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, content)`` of every regular file under ``prefix`` in storage order.

    Neighbouring blobs of a pack are fetched with one ranged read (up to 16 MiB), so a whole
    version is read as a few large sequential reads; each blob is verified.
    """
    prefix = prefix.strip("/")
    files = (
        e
        for e in manifest.walk()
        if e.kind == FILE and (not prefix or e.path == prefix or e.path.startswith(prefix + "/"))
    )
    pending: list[tuple[Entry, list[BlobLocation]]] = []
    span = 0
    for entry in files:
        blobs = manifest.blobs(entry)
        pending.append((entry, blobs))
        span += sum(b.stored_length for b in blobs)
        if span >= _SPAN:
            yield from _flush(store, pending)
            pending, span = [], 0
    yield from _flush(store, pending)


def _flush(
    store: Store, pending: list[tuple[Entry, list[BlobLocation]]]
) -> Iterator[tuple[str, bytes]]:
    blobs = [b for _, bl in pending for b in bl]
    fetched = store.read_blobs(blobs)
    i = 0
    for entry, bl in pending:
        yield entry.path, b"".join(fetched[i : i + len(bl)])
        i += len(bl)
