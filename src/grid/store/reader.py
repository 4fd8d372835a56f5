"""Reading files back at random: ``RangeReader`` is the one random-access reader (the mount's
snapshot, ``open()`` and fsspec read through it) and ``BlobFile`` a seekable file object over
one file. Whole versions are streamed by ``grid.store.streaming``. Every byte handed out has
been checked against its blob's BLAKE3 id.
"""

from __future__ import annotations

import bisect
import io
import threading
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from grid.store.manifest import (
    BlobLocation,
)

if TYPE_CHECKING:
    from grid.store.repository import Store

_CACHE_BYTES = 64 << 20  # verified blobs kept for small and overlapping reads
_LAYOUTS = 4096  # files whose position is remembered, to spot sequential readers
_READ_AHEAD = 4  # blobs (~1 MiB each) fetched ahead of a sequential reader


def blob_starts(blobs: list[BlobLocation]) -> list[int]:
    """Offset in the file at which each blob begins (bisect it to find the blob for a byte)."""
    starts, total = [], 0
    for blob in blobs:
        starts.append(total)
        total += blob.raw_length
    return starts


class RangeReader:
    """Verified byte ranges of files, for random access: an LRU of verified blobs, so that a
    reader going through a blob in small reads fetches and checks it once, and read-ahead:
    a reader going forward through a multi-blob file has the next blobs fetched and verified
    by background threads while it consumes the current one. Thread-safe: readers of one blob
    at the same time share one fetch (the FUSE mount answers requests in several threads).
    """

    def __init__(self, store: Store, cache_bytes: int = _CACHE_BYTES) -> None:
        self._store = store
        self._limit = cache_bytes
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._ends: OrderedDict[int, int] = OrderedDict()  # file key -> end of its last read
        self._ahead: dict[bytes, Future[bytes]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop the read-ahead threads; pending fetches are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._ahead.clear()

    def read(
        self, key: int, blobs: list[BlobLocation], starts: list[int], offset: int, size: int
    ) -> bytes:
        """Up to ``size`` bytes from ``offset`` of the file made of ``blobs`` (which begin at
        ``starts``, see ``blob_starts``); ``key`` tells files apart for read-ahead.

        Raises:
            IntegrityError: the stored bytes are damaged or missing.
        """
        total = starts[-1] + blobs[-1].raw_length if blobs else 0
        end = min(offset + size, total)
        if offset >= end:
            return b""
        if len(blobs) == 1 and offset == 0 and end == total:
            # A small file read whole (the common case): its reader keeps the bytes, so
            # keeping the blob here too would only churn the cache.
            hit = self._cache.get(blobs[0].digest)
            return hit if hit is not None else self._store.read_blob(blobs[0])
        with self._lock:
            if len(blobs) > 1 and self._ends.get(key, 0) == offset:
                self._read_ahead(blobs, bisect.bisect_right(starts, end - 1))
            self._ends[key] = end
            self._ends.move_to_end(key)
            if len(self._ends) > _LAYOUTS:
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
        return out[0] if len(out) == 1 else b"".join(out)

    def _blob(self, loc: BlobLocation) -> bytes:
        digest = loc.digest
        with self._lock:
            data = self._cache.get(digest)
            if data is not None:
                self._cache.move_to_end(digest)
                return data
            pending = self._ahead.get(digest)
            if pending is None:  # fetch it here; readers of it meanwhile wait for this one
                pending = self._ahead[digest] = Future()
                pending.set_running_or_notify_cancel()  # so that trimming cannot cancel it
                mine = True
            else:
                mine = False
        if mine:
            try:
                data = self._store.read_blob(loc)
            except BaseException as exc:
                pending.set_exception(exc)
                with self._lock:
                    self._ahead.pop(digest, None)
                raise
            pending.set_result(data)
        else:
            try:
                data = pending.result()
            except CancelledError:  # a read-ahead dropped as stale before it started
                data = self._store.read_blob(loc)
        with self._lock:
            self._ahead.pop(digest, None)
            if digest not in self._cache:
                self._cache[digest] = data
                self._cached_bytes += len(data)
                while self._cached_bytes > self._limit and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    self._cached_bytes -= len(old)
        return data

    def _read_ahead(self, blobs: list[BlobLocation], first: int) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="grid-read-ahead")
        for loc in blobs[first : first + _READ_AHEAD]:
            if loc.digest not in self._cache and loc.digest not in self._ahead:
                self._ahead[loc.digest] = self._pool.submit(self._store.read_blob, loc)
        while len(self._ahead) > 4 * _READ_AHEAD:  # readers that stopped early
            self._ahead.pop(next(iter(self._ahead))).cancel()


class BlobFile(io.RawIOBase):
    """A read-only, seekable view of one file's content, read through its own
    ``RangeReader`` (verified blobs, read-ahead when read forward)."""

    def __init__(self, store: Store, blobs: list[BlobLocation], name: str = "") -> None:
        self._store = store
        self._blobs = blobs
        self._starts = blob_starts(blobs)
        self._size = sum(b.raw_length for b in blobs)
        self._pos = 0
        self._reader = RangeReader(store, cache_bytes=8 << 20)
        self.name = name

    def close(self) -> None:
        self._reader.close()
        super().close()

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

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._reader.read(0, self._blobs, self._starts, self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)
