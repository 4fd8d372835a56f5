"""Reading a source's files for ingest: what a work item holds, reading and hashing a batch
of small files on a worker thread, and telling a file that changed while it was read."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

from grid.errors import SourceError
from grid.ids import digest_of
from grid.store.chunker import read_small
from grid.store.compression import RAW, encode
from grid.store.filestate import StoredBlob
from grid.tree import Source, SourceEntry

_TORN_TRIES = 3  # reads of a small file that keeps changing before it is stored as read
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)

Item = tuple[SourceEntry, Any, bool]  # entry, bytes-like content or None, last piece of entry
READ = object()  # placeholder: a worker reads this small file (reads then run in parallel)
VANISHED = object()  # the file was deleted between listing and reading
GONE = -1  # raw length reported for a vanished file
UNCHANGED = -2  # raw length reported for a file recognised from the file state


def is_bytes(data: Any) -> bool:
    return isinstance(data, (bytes, memoryview))


class Unchanged:
    """A file the file state recognised: where its blobs are, in file order."""

    __slots__ = ("refs",)

    def __init__(self, refs: list[StoredBlob]) -> None:
        self.refs = refs


class Digested(list[tuple[SourceEntry, Any, Any, int, int, bool]]):
    """A batch's results, one tuple per item; of its small files, how many were ``read`` and
    how many of those were not all in the page cache (``cold``)."""

    read = 0
    cold = 0

    @property
    def from_disk(self) -> bool:
        """Whether the disk was read for a good part of the batch (then more reads in parallel
        pay). A few files per batch count as cold though cached: a read that would start the
        kernel's read-ahead is refused by RWF_NOWAIT too (0.7 % of `small` read warm)."""
        return self.cold * 4 > self.read


def digest_batch(source: Source, batch: list[Item], warn: Callable[[str], None]) -> Digested:
    out = Digested()
    for entry, data, last in batch:
        if isinstance(data, Unchanged):
            out.append((entry, None, data, RAW, UNCHANGED, last))
            continue
        if data is READ:
            data, cold = _read_small_file(source, entry, warn)
            out.read += 1
            out.cold += cold
        if data is VANISHED:
            out.append((entry, None, None, RAW, GONE, last))
        elif data is not None and len(data):
            payload, codec = encode(data)
            out.append((entry, digest_of(data), payload, codec, len(data), last))
        else:
            out.append((entry, None, None, RAW, 0, last))
    return out


def read_small_file(source: Source, entry: SourceEntry, warn: Callable[[str], None]) -> Any:
    """Read a small file whole; read again (up to 3 times) if it changed while being read."""
    return _read_small_file(source, entry, warn)[0]


def _read_small_file(
    source: Source, entry: SourceEntry, warn: Callable[[str], None]
) -> tuple[Any, bool]:
    """``read_small_file``, and whether the disk had to be read (not all in the page cache)."""
    try:
        for _ in range(_TORN_TRIES):
            with source.open(entry) as f:
                before = fingerprint(f)
                cached = _cached(f, entry.size)
                data = read_small(f, entry.size) if cached is None else cached
                if before == fingerprint(f):
                    return data, cached is None
        warn(torn(entry))
        return data, cached is None
    except FileNotFoundError:
        return VANISHED, False
    except OSError as exc:
        raise source_error(entry, exc) from exc


def _cached(f: Any, size: int) -> memoryview | None:
    """The whole file if the page cache holds it (one read that never waits for the disk),
    else None (then nothing was consumed: the caller reads from offset 0). Sources without a
    file descriptor (S3, archives) count as not cached."""
    try:
        buffer = bytearray(size + 1)
        got = os.preadv(f.fileno(), [buffer], 0, _NOWAIT)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None  # BlockingIOError: not cached; the others: no descriptor to read
    if got > size or got < size:
        return None  # grew, shrank, or only partly cached: the usual read sorts it out
    return memoryview(buffer)[:got]


def fingerprint(f: Any) -> tuple[int, int, int] | None:
    """Size, mtime and ctime of an open local file (None for other sources: an S3 object or
    an archive member cannot change while it is read)."""
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def torn(entry: SourceEntry) -> str:
    return (
        f"{entry.location or entry.path} changed while it was read (is it being written?): "
        "stored as read, which may mix old and new bytes; create again once it is complete"
    )


def source_error(entry: SourceEntry, exc: OSError) -> SourceError:
    where = entry.location or entry.path
    return SourceError(f"cannot read {where}: {exc.strerror or exc}", path=where)
