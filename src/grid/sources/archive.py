"""An archive at an http(s) URL as a source: .tar (plain, gzip, bzip2, xz, zstd) or .zip, told
apart by content, not by suffix.

A tar streams from the socket through a decompressing thread straight into the store: no copy
of the archive or of the tree is written. A zip needs its central directory (at the end), so it
is read over Range requests when the server honours them, else the archive alone is spooled to
a temporary file (bounded by the size limit, deleted after).

Entries come in archive order (``sequential``: a file's content can only be read while it is the
entry last yielded); parent folders missing from the archive are yielded before their first
child. What needs the whole tree (duplicates, hardlinks, links escaping the root, the single
top folder) is settled afterwards by ``grid.store.arrange``, from ``hardlinks`` and
``dir_meta``. Every entry is checked as it comes: absolute paths, ``..``, devices and FIFOs,
names that are not UTF-8, and the limits on total size, entry count and compression ratio
refuse the archive with an ``ArchiveError`` naming the entry.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import os
import queue
import stat
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import zstandard
from isal import igzip
from zstandard import ZstdError

from grid.errors import ArchiveError, GridError, SourceError, UsageError
from grid.sources import http
from grid.tree import SourceEntry, Warn

_SUFFIXES = (
    *(".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tbz2", ".txz", ".tzst"),
    *(".tar", ".zip", ".gz", ".bz2", ".xz", ".zst"),
)
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",
}
_PIPE_CHUNK = 1 << 20
_RATIO_FLOOR = 1 << 20  # ratios are judged against at least this many compressed bytes
_DIR_MODE = stat.S_IFDIR | 0o755
_KEEP_BITS = 0o1777  # setuid and setgid bits from an archive are dropped


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that refuse a decompression bomb: total bytes of the files, number of entries,
    and expanded bytes per compressed byte."""

    max_bytes: int = 4 << 40
    max_entries: int = 10_000_000
    max_ratio: float = 250.0


def is_url(source: str) -> bool:
    """Whether a create source is an http(s) URL."""
    return source.startswith(("http://", "https://"))


def archive_name(url: str) -> str:
    """The datastore name an archive URL suggests: its file name less the archive suffix."""
    name = os.path.basename(unquote(urlsplit(url).path).rstrip("/"))
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _kind(head: bytes) -> str:
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if len(head) >= 512 and not any(head[:512]):
        return "tar"  # an end-of-archive block first: an empty tar
    with contextlib.suppress(tarfile.TarError):
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
        return "tar"
    return ""


def clean_path(name: str) -> str:
    """The relative path an archive member stands for ('' for the root itself).

    Raises:
        ArchiveError: an absolute path, a ``..`` component, a NUL or a name not in UTF-8.
    """
    if "\0" in name:
        raise ArchiveError(f"archive entry {name!r} has a NUL in its name", path=name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArchiveError(f"archive entry {name!r} is not named in UTF-8", path=name) from exc
    if name.startswith("/") or (len(name) > 2 and name[1] == ":" and name[2] in "/\\"):
        raise ArchiveError(f"archive entry {name!r} has an absolute path", path=name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"archive entry {name!r} climbs out with '..'", path=name)
    for part in parts:
        if len(part.encode()) > 255:
            raise ArchiveError(f"archive entry {name!r} has a name over 255 bytes", path=name)
    return "/".join(parts)


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A member's name: zip tools often store UTF-8 without flagging it, and zipfile then
    decodes it as cp437; undo that when the bytes are valid UTF-8 (as unzip does)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


class _Pipe(io.RawIOBase):
    """Decompresses ``raw`` on a background thread (zlib, bz2, lzma and zstd release the GIL),
    handing 1 MiB pieces to the reader; enforces the expansion ratio."""

    def __init__(self, raw: BinaryIO, kind: str, compressed: Any, limits: ArchiveLimits) -> None:
        self._raw, self._kind, self._compressed, self._limits = raw, kind, compressed, limits
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._left = b""
        self._stop = threading.Event()
        self.expanded = 0
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
                    allowed = self._limits.max_ratio * max(self._compressed(), _RATIO_FLOOR)
                    if self.expanded > allowed:
                        raise ArchiveError(
                            f"the archive expands more than {self._limits.max_ratio:g} times "
                            "(a decompression bomb?); raise --max-ratio if it is genuine"
                        )
                if not self._put(data):
                    return
        except Exception as exc:  # handed to the reader, unless it has stopped reading
            if self._stop.is_set():
                return
            if isinstance(exc, (OSError, EOFError, zlib.error, lzma.LZMAError, ZstdError)):
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


class _Forward:
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
            raise ArchiveError("the tar archive needs random access here; it is not supported")
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


class _Member(io.RawIOBase):
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
                f"the archive is truncated or corrupt at {self._path}: {exc}", path=self._path
            ) from exc

    def close(self) -> None:
        self._f.close()
        super().close()


class ArchiveSource:
    """The tree inside an archive at ``url``.

    Args:
        url: http(s) URL of the archive.
        warn: where non-fatal problems are reported.
        limits: decompression-bomb bounds.
        allow_private: allow hosts on internal addresses (see ``grid.sources.http``).
        spool_dir: where a zip from a server without Range support is spooled.

    Raises:
        UsageError: not an http(s) URL, refused, not found, or not an archive.
        SourceError: the server could not be reached or failed.
    """

    sequential = True

    def __init__(
        self,
        url: str,
        warn: Warn | None = None,
        *,
        limits: ArchiveLimits | None = None,
        allow_private: bool = True,
        spool_dir: str | None = None,
    ) -> None:
        self.root = url
        self.warn = warn or (lambda _msg: None)
        self.limits = limits or ArchiveLimits()
        self.exclude: tuple[str, ...] = ()
        self.hardlinks: list[tuple[str, str, int, int]] = []  # path, target, mode, mtime_ns
        self.dir_meta: dict[str, tuple[int, int]] = {}  # explicit folders: mode, mtime_ns
        self.downloaded = 0
        self._allow_private, self._spool_dir = allow_private, spool_dir
        self._client = http.client(allow_private)
        self._dirs: set[str] = {""}
        self._count = self._bytes = self._archive_size = 0
        self._current: Any = None
        self._closers: list[Any] = [self._client]
        try:
            self._stream = http.HttpStream(self._client, url, allow_private, self._count_bytes)
            self._closers.append(self._stream)
            self._buffered = io.BufferedReader(self._stream, 1 << 20)
            self.kind = _kind(self._buffered.peek(512)[:512])
        except BaseException:
            self.close()
            raise
        self.total = self._stream.total
        if not self.kind:
            self.close()
            raise UsageError(
                f"{url} is not a .zip, .tar, .tar.gz, .tar.bz2, .tar.xz or .tar.zst archive "
                f"(content type {self._stream.content_type or 'unknown'})",
                rule="SOURCE URL must point to an archive",
            )

    def _count_bytes(self, n: int) -> None:
        self.downloaded += n

    def is_empty(self) -> bool:
        return False  # known only once read; an empty archive is refused by arrange

    def cancel(self) -> None:
        """Make a read blocked on a stalled download (on another thread) give up."""
        for thing in self._closers:
            if isinstance(thing, _Pipe):
                thing.cancel()

    def close(self) -> None:
        for thing in reversed(self._closers):
            with contextlib.suppress(Exception):
                thing.close()
        self._closers = []

    # -- checks --------------------------------------------------------------------------
    def _admit(self, name: str, size: int) -> str:
        self._count += 1
        if self._count > self.limits.max_entries:
            raise ArchiveError(
                f"the archive has more than {self.limits.max_entries} entries (at {name!r}); "
                "raise --max-files if it is genuine",
                path=name,
            )
        self._bytes += size
        if self._bytes > self.limits.max_bytes:
            raise ArchiveError(
                f"the archive expands to more than {self.limits.max_bytes} bytes (at {name!r}); "
                "raise --max-size if it is genuine",
                path=name,
            )
        return clean_path(name)

    def _parents(self, path: str, mtime_ns: int) -> Iterator[SourceEntry]:
        """Folders above ``path`` not yet yielded, outermost first."""
        parent = os.path.dirname(path)
        if parent in self._dirs:
            return
        yield from self._parents(parent, mtime_ns)
        self._dirs.add(parent)
        up, name = os.path.split(parent)
        yield SourceEntry(up, name, _DIR_MODE, 0, mtime_ns, None, parent)

    def _dir(self, path: str, mode: int, mtime_ns: int) -> Iterator[SourceEntry]:
        if path in self.dir_meta:
            raise ArchiveError(f"the archive holds the folder {path!r} twice", path=path)
        self.dir_meta[path] = (stat.S_IFDIR | mode, mtime_ns)
        if path and path not in self._dirs:
            yield from self._parents(path, mtime_ns)
            self._dirs.add(path)
            up, name = os.path.split(path)
            yield SourceEntry(up, name, stat.S_IFDIR | mode, 0, mtime_ns, None, path)

    def _leaf(
        self, path: str, mode: int, size: int, mtime_ns: int, target: str | None = None
    ) -> Iterator[SourceEntry]:
        if not path:
            raise ArchiveError("the archive has a file entry for its root folder", path=path)
        yield from self._parents(path, mtime_ns)
        up, name = os.path.split(path)
        yield SourceEntry(up, name, mode, size, mtime_ns, target, path)

    def _link(self, path: str, target: str, mtime_ns: int) -> Iterator[SourceEntry]:
        if not target or target.startswith("/") or "\0" in target:
            raise ArchiveError(
                f"archive entry {path!r} is a symlink to {target!r}, outside the archive",
                path=path,
            )
        yield from self._leaf(path, stat.S_IFLNK | 0o777, len(target.encode()), mtime_ns, target)

    def _hardlink(self, path: str, target: str, mode: int, mtime_ns: int) -> Iterator[SourceEntry]:
        try:
            target = clean_path(target)
        except ArchiveError as exc:
            raise ArchiveError(
                f"archive entry {path!r} is a hardlink to {target!r}, outside the archive",
                path=path,
            ) from exc
        if not path:
            raise ArchiveError("the archive has a hardlink for its root folder", path=path)
        yield from self._parents(path, mtime_ns)
        self.hardlinks.append((path, target, mode, mtime_ns))

    # -- reading ---------------------------------------------------------------------------
    def entries(self) -> Iterator[SourceEntry]:
        if self.kind == "zip":
            yield from self._zip_entries()
        else:
            yield from self._tar_entries()

    def open(self, entry: SourceEntry) -> BinaryIO:
        if self._current is None or self._current[0] != entry.location:
            raise SourceError(f"{entry.location}: read out of archive order", path=entry.location)
        return io.BufferedReader(_Member(self._current[1](), entry.location), 1 << 20)

    def _tar_entries(self) -> Iterator[SourceEntry]:
        pipe = _Pipe(self._buffered, self.kind, lambda: self.downloaded, self.limits)
        self._closers.append(pipe)
        try:
            forward: Any = _Forward(pipe)
            tar = tarfile.open(fileobj=forward, mode="r:")  # noqa: SIM115
        except tarfile.TarError as exc:
            if str(exc) == "empty file":
                raise ArchiveError("the archive holds no files") from exc
            raise UsageError(
                f"{self.root} holds {self.kind} data that is not a tar archive",
                rule="SOURCE URL must point to an archive",
            ) from exc
        while True:
            try:
                member = tar.next()
            except (tarfile.TarError, EOFError, zlib.error) as exc:
                raise ArchiveError(f"the archive is truncated or corrupt: {exc}") from exc
            if member is None:
                return
            tar.members.clear()  # type: ignore[attr-defined]  # streaming: keep no member list
            path = self._admit(member.name, member.size if member.isreg() else 0)
            mtime_ns = int(member.mtime * 1_000_000_000)
            mode = member.mode & _KEEP_BITS
            if member.isdir():
                yield from self._dir(path, mode, mtime_ns)
            elif member.isreg():
                self._current = (path, lambda m=member: tar.extractfile(m))
                yield from self._leaf(path, stat.S_IFREG | mode, member.size, mtime_ns)
            elif member.issym():
                yield from self._link(path, member.linkname, mtime_ns)
            elif member.islnk():
                yield from self._hardlink(path, member.linkname, stat.S_IFREG | mode, mtime_ns)
            else:
                what = "device" if member.ischr() or member.isblk() else "FIFO"
                if not (member.ischr() or member.isblk() or member.isfifo()):
                    what = "special entry"
                raise ArchiveError(f"archive entry {member.name!r} is a {what}", path=member.name)

    def _zip_file(self) -> zipfile.ZipFile:
        size = self._stream.total
        self._archive_size = size or 0
        if self._stream.ranges and size:
            self._buffered.close()
            ranged = http.RangeFile(
                self._client, self._stream.final_url, size, self._allow_private, self._count_bytes
            )
            self.downloaded = 0
            self._closers.append(ranged)
            fileobj: Any = io.BufferedReader(ranged, 1 << 16)
        else:
            fileobj = self._spool()
        try:
            return zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ArchiveError(f"the zip archive is truncated or corrupt: {exc}") from exc

    def _spool(self) -> BinaryIO:
        """Copy the archive (only) to a temporary file, deleted when closed."""
        if self._spool_dir:
            os.makedirs(self._spool_dir, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115 (closed by close)
        self._closers.append(spool)
        self.warn("the server does not support Range requests: spooling the zip to disk")
        try:
            while data := self._buffered.read(1 << 20):
                if spool.tell() + len(data) > self.limits.max_bytes:
                    raise ArchiveError(
                        f"the archive is larger than {self.limits.max_bytes} bytes; "
                        "raise --max-size if it is genuine"
                    )
                spool.write(data)
        except OSError as exc:
            raise SourceError(f"cannot spool {self.root}: {exc.strerror or exc}") from exc
        self._archive_size = spool.tell()
        spool.seek(0)
        return spool

    def _zip_entries(self) -> Iterator[SourceEntry]:
        zf = self._zip_file()
        self._closers.append(zf)
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        archive_size = self._archive_size
        declared = sum(i.file_size for i in infos)
        if declared > self.limits.max_ratio * max(archive_size, _RATIO_FLOOR):
            raise ArchiveError(
                f"the archive declares {declared} bytes in {archive_size} "
                f"(over {self.limits.max_ratio:g} times: a decompression bomb?); "
                "raise --max-ratio if it is genuine"
            )
        for info in infos:
            path = self._admit(_zip_name(info), info.file_size)
            if info.flag_bits & 0x1:
                raise ArchiveError(f"archive entry {info.filename!r} is encrypted", path=path)
            unix = info.external_attr >> 16 if info.create_system == 3 else 0
            kind = stat.S_IFMT(unix)
            mtime_ns = int(datetime(*info.date_time).timestamp() * 1_000_000_000)
            if info.is_dir():
                yield from self._dir(path, (unix & _KEEP_BITS) or 0o755, mtime_ns)
            elif kind == stat.S_IFLNK:
                if info.file_size > 4096:
                    raise ArchiveError(f"archive entry {info.filename!r}: link too long", path=path)
                with _Member(zf.open(info), path) as f:
                    target = f.read().decode("utf-8", "surrogateescape")
                yield from self._link(path, target, mtime_ns)
            elif kind in (0, stat.S_IFREG):
                self._current = (path, lambda i=info: zf.open(i))
                mode = stat.S_IFREG | ((unix & _KEEP_BITS) or 0o644)
                yield from self._leaf(path, mode, info.file_size, mtime_ns)
            else:
                raise ArchiveError(
                    f"archive entry {info.filename!r} is a device, FIFO or socket", path=path
                )
