"""Byte plumbing for archives: a thread that inflates a compressed stream ahead of its reader,
a forward-only file tarfile can read in its random-access mode, a sparse member's content that
counts its holes, and a member's content whose failures become ArchiveErrors naming the
member."""

from __future__ import annotations

import bz2
import contextlib
import errno
import io
import lzma
import queue
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

import zstandard
from isal import igzip, igzip_lib
from zstandard import ZstdError

from grid.errors import ArchiveError, GridError, storage_error
from grid.sources.archive_rules import RATIO_FLOOR, ArchiveLimits, shown

_PIPE_CHUNK = 1 << 20
_ISAL_ERROR: type[Exception] = igzip_lib.IsalError  # type: ignore[assignment]  # stub: an instance
_CORRUPT = (OSError, EOFError, zlib.error, lzma.LZMAError, ZstdError, _ISAL_ERROR)


class Inflater(io.RawIOBase):
    """Decompresses ``raw`` on a background thread (zlib, bz2, lzma and zstd release the GIL),
    handing 1 MiB pieces to the reader; enforces the expansion ratio, counting the holes of
    sparse files read so far (``holes``, kept by the reader) as expanded bytes."""

    def __init__(
        self, raw: BinaryIO, kind: str, compressed: Callable[[], int], limits: ArchiveLimits
    ) -> None:
        self._raw, self._kind, self._compressed, self._limits = raw, kind, compressed, limits
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._left = b""
        self._stop = threading.Event()
        self.expanded = 0
        self.holes = 0
        self._thread = threading.Thread(target=self._run, name="grid-inflate", daemon=True)
        self._thread.start()

    def _reader(self) -> Any:
        if self._kind == "gzip":  # ISA-L's inflate: ~1.8 times zlib's speed here
            return igzip.IGzipFile(fileobj=self._raw, mode="rb")  # type: ignore[no-untyped-call]
        if self._kind == "bzip2":
            return bz2.BZ2File(self._raw)
        if self._kind == "xz":
            return lzma.LZMAFile(self._raw)
        if self._kind == "zstd":
            return zstandard.ZstdDecompressor().stream_reader(self._raw, read_across_frames=True)
        return self._raw

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            reader = self._reader()
            while True:
                data = reader.read(_PIPE_CHUNK)
                if not data:
                    self._put(b"")
                    return
                self.expanded += len(data)
                if self._kind != "tar":
                    allowed = self._limits.max_ratio * max(self._compressed(), RATIO_FLOOR)
                    if self.expanded + self.holes > allowed:
                        raise ArchiveError(
                            f"the archive expands more than {self._limits.max_ratio:g} times "
                            "(a decompression bomb?); raise --max-ratio if it is genuine"
                        )
                if not self._put(data):
                    return
        except Exception as exc:  # handed to the reader, unless it has stopped reading
            if self._stop.is_set():
                return
            if isinstance(exc, _CORRUPT):
                exc = ArchiveError(f"the archive is truncated or corrupt: {exc}")
            self._put(exc)

    def readable(self) -> bool:
        return True

    def _next(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():  # cancelled while the network stalls
                    return ArchiveError("the download was stopped")

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._left:
            item = self._next()
            if isinstance(item, BaseException):
                self._put(item)  # every later read fails the same way
                raise item
            if not item:
                self._put(b"")
                return 0
            self._left = item
        n = min(len(view), len(self._left))
        view[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def cancel(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        super().close()


class Forward:
    """A forward-only file with ``tell`` and forward ``seek``, so that tarfile reads it in its
    random-access mode, whose reads are plain buffered reads (its stream mode copies the rest
    of its buffer on every small read: a megabyte per member header)."""

    def __init__(self, raw: io.RawIOBase) -> None:
        self._f = io.BufferedReader(raw, 1 << 20)
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or pos < self._pos:
            # tarfile seeks back only when headers disagree with the data they describe
            raise ArchiveError(
                f"the tar archive is corrupt: its headers point back to byte {pos} "
                f"from byte {self._pos}"
            )
        while pos > self._pos:
            skipped = len(self._f.read(min(pos - self._pos, 1 << 20)))
            if not skipped:
                break
            self._pos += skipped
        return self._pos

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n = self._f.readinto(buffer)
        self._pos += n
        return n


class Holes(io.RawIOBase):
    """A sparse tar member's content (``fileobj``, holes read as zeros); ``on_holes(n)`` is
    told of every ``n`` bytes of hole read, before they are handed on.

    ``sparse`` is the member's map of (offset, length) data runs, in order (checked by the
    caller); what lies between them is hole."""

    def __init__(
        self, fileobj: Any, sparse: list[tuple[int, int]], on_holes: Callable[[int], None]
    ) -> None:
        self._f, self._on_holes = fileobj, on_holes
        self._runs = [(offset, offset + size) for offset, size in sparse if size > 0]
        self._run = 0  # the first run that ends after ``_pos``
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _data_in(self, start: int, end: int) -> int:
        """Bytes of data (not hole) in [start, end); ``start`` only ever grows."""
        runs, data = self._runs, 0
        while self._run < len(runs) and runs[self._run][1] <= start:
            self._run += 1
        i = self._run
        while i < len(runs) and runs[i][0] < end:
            data += min(runs[i][1], end) - max(runs[i][0], start)
            i += 1
        return data

    def readinto(self, buffer: Any) -> int:
        n = int(self._f.readinto(buffer))
        if n:
            holes = n - self._data_in(self._pos, self._pos + n)
            self._pos += n
            if holes:
                self._on_holes(holes)
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


class Member(io.RawIOBase):
    """A member's content; archive failures while reading become ArchiveErrors naming it."""

    def __init__(self, fileobj: Any, path: str) -> None:
        self._f, self._path = fileobj, path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return int(self._f.readinto(buffer))
        except GridError:
            raise
        except OSError as exc:  # no errno: bz2's "Invalid data stream"; EINVAL: a bad seek
            if exc.errno not in (None, errno.EINVAL):
                raise storage_error(exc, f"read {self._path} from the archive") from exc
            raise ArchiveError(
                f"the archive is truncated or corrupt at {shown(self._path)}: {exc}",
                path=self._path,
            ) from exc
        except (
            tarfile.TarError,
            zipfile.BadZipFile,
            EOFError,
            zlib.error,
            lzma.LZMAError,
            NotImplementedError,
            RuntimeError,
        ) as exc:
            raise ArchiveError(
                f"the archive is truncated or corrupt at {shown(self._path)}: {exc}",
                path=self._path,
            ) from exc

    def close(self) -> None:
        self._f.close()
        super().close()


class Body(io.RawIOBase):
    """An archive's bytes from a stream at hand (not a URL), counted as they are read like a
    download's (the compression-ratio limit needs the count)."""

    ranges = False  # a zip from here is spooled
    final_url = ""
    content_type = "application/x-tar"

    def __init__(self, raw: BinaryIO, total: int | None, on_read: Callable[[int], None]) -> None:
        super().__init__()
        self._raw, self.total, self._on_read = raw, total, on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._on_read(len(data))
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()
