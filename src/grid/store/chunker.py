"""Content-defined chunking: small files are one blob, larger ones are cut by FastCDC.

Cut points depend only on content, so an edit inside a large file changes the blobs around the
edit and leaves the rest (and their ids) as they were.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, BinaryIO

SMALL_FILE_MAX = 1 << 20
# FastCDC skips MIN_CHUNK bytes before looking for a cut, so chunks average MIN + AVG = 1 MiB
# and only half the bytes are scanned.
MIN_CHUNK = 512 << 10
AVG_CHUNK = 512 << 10
MAX_CHUNK = 4 << 20
_SEGMENT = 8 << 20


@functools.cache
def _cdc() -> Any:
    """The content-defined chunker, made on first use: readers of a version import this
    module for its sizes and never load pyfastcdc."""
    from pyfastcdc import FastCDC

    return FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def read_small(f: BinaryIO, size: int) -> bytes:
    """Read a whole small file; one syscall in the common case, tolerant of growth."""
    data = f.read(size + 1)
    if len(data) <= size:
        return data
    return data + f.read()


def _fill(f: BinaryIO, view: memoryview) -> int:
    """Read into ``view`` until it is full or the file ends; return bytes read."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


class SegmentPool:
    """Reusable read buffers. A buffer is reused only once no chunk view points into it any more
    (a bytearray with live exports refuses to resize), which saves the page faults of fresh
    allocations: reading into warm buffers is ~4x faster here."""

    def __init__(self, keep: int = 16) -> None:
        self._buffers: list[bytearray] = []
        self._keep = keep

    def get(self) -> bytearray:
        for i, buf in enumerate(self._buffers):
            try:
                buf.pop()  # raises BufferError while chunk views still use it
            except BufferError:
                continue
            buf.append(0)  # within the allocation: no copy
            return self._buffers.pop(i)
        return bytearray(_SEGMENT + MAX_CHUNK)

    def put(self, buf: bytearray) -> None:
        if len(self._buffers) < self._keep:
            self._buffers.append(buf)


def iter_chunks(f: BinaryIO, pool: SegmentPool | None = None) -> Iterator[memoryview]:
    """Yield the file's content-defined chunks in order, reading 8 MiB at a time.

    Memory stays bounded by the segments whose chunks are still in use, whatever the file's size.
    """
    pool = pool or SegmentPool(keep=0)
    carry = b""
    while True:
        buf = pool.get()
        pool.put(buf)
        buf[: len(carry)] = carry
        got = _fill(f, memoryview(buf)[len(carry) : len(carry) + _SEGMENT])
        end = len(carry) + got
        eof = got < _SEGMENT
        if end == 0:
            return
        view = memoryview(buf)[:end]
        chunks = list(_cdc().cut_buf(view))
        # The last cut of a segment is forced by the segment's end unless the file ended there.
        keep = chunks if eof else chunks[:-1]
        for chunk in keep:
            yield chunk.data
        if eof:
            return
        last = chunks[-1]
        carry = bytes(view[last.offset : last.offset + last.length])
