"""Reading files back: a seekable file object over a manifest entry, and whole-version streaming
in storage order. Every byte handed out has been checked against its blob's BLAKE3 id.
"""

from __future__ import annotations

import bisect
import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from grid.store.manifest import FILE, BlobLocation, Entry, ManifestReader

if TYPE_CHECKING:
    from grid.store.repository import Store

# Coalesce neighbouring blobs of one pack into reads of up to this size when streaming.
_SPAN = 16 << 20
_AHEAD = 2  # spans fetched ahead of the one being consumed


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

    @property
    def size(self) -> int:
        """The file's length in bytes."""
        return self._size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the current position or the end, as ``io`` files
        do: past the end is allowed (reads there are empty), before the start is not.

        Raises:
            ValueError: an unknown ``whence``, or a position before the start.
        """
        if whence == io.SEEK_SET:
            base = 0
        elif whence == io.SEEK_CUR:
            base = self._pos
        elif whence == io.SEEK_END:
            base = self._size
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
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
    version is read as a few large sequential reads; each blob is verified. Two threads fetch
    and verify the next spans while the caller consumes the current one (reads and hashing
    release the GIL).
    """
    with ThreadPoolExecutor(2, thread_name_prefix="grid-stream") as pool:
        inflight: deque[Future[list[tuple[str, bytes]]]] = deque()
        try:
            for pending in _spans(manifest, prefix):
                inflight.append(pool.submit(_fetch, store, pending))
                if len(inflight) > _AHEAD:
                    yield from inflight.popleft().result()
            while inflight:
                yield from inflight.popleft().result()
        finally:
            for fut in inflight:
                fut.cancel()


def _spans(
    manifest: ManifestReader, prefix: str
) -> Iterator[list[tuple[Entry, list[BlobLocation]]]]:
    """The files under ``prefix`` in storage order, in groups of about ``_SPAN`` stored bytes."""
    prefix = prefix.strip("/")
    pending: list[tuple[Entry, list[BlobLocation]]] = []
    span = 0
    for entry in manifest.walk():
        if entry.kind != FILE or (
            prefix and entry.path != prefix and not entry.path.startswith(prefix + "/")
        ):
            continue
        blobs = manifest.blobs(entry)
        pending.append((entry, blobs))
        span += sum(b.stored_length for b in blobs)
        if span >= _SPAN:
            yield pending
            pending, span = [], 0
    if pending:
        yield pending


def _fetch(
    store: Store, pending: list[tuple[Entry, list[BlobLocation]]]
) -> list[tuple[str, bytes]]:
    fetched = store.read_blobs([b for _, bl in pending for b in bl])
    out = []
    i = 0
    for entry, bl in pending:
        out.append((entry.path, b"".join(fetched[i : i + len(bl)])))
        i += len(bl)
    return out
