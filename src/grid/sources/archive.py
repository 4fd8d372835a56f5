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

import contextlib
import io
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from grid.errors import ArchiveError, SourceError, UsageError, storage_error
from grid.sources.archive_rules import RATIO_FLOOR, ArchiveLimits, clean_path
from grid.sources.inflate import Forward, Inflater, Member
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
_DIR_MODE = stat.S_IFDIR | 0o755
_KEEP_BITS = 0o1777  # setuid and setgid bits from an archive are dropped


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


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A member's name: zip tools often store UTF-8 without flagging it, and zipfile then
    decodes it as cp437; undo that when the bytes are valid UTF-8 (as unzip does)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


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
        from grid.sources import http  # here: httpx costs ~0.1 s to import, every command

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
        self._count = self._bytes = 0
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
            if isinstance(thing, Inflater):
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
        return io.BufferedReader(Member(self._current[1](), entry.location), 1 << 20)

    def _tar_entries(self) -> Iterator[SourceEntry]:
        pipe = Inflater(self._buffered, self.kind, lambda: self.downloaded, self.limits)
        self._closers.append(pipe)
        try:
            forward: Any = Forward(pipe)
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
                device = member.ischr() or member.isblk()
                what = "device" if device else "FIFO" if member.isfifo() else "special entry"
                raise ArchiveError(f"archive entry {member.name!r} is a {what}", path=member.name)

    def _zip_file(self) -> tuple[zipfile.ZipFile, int]:
        """The zip and the archive's size."""
        from grid.sources import http

        size = self._stream.total or 0
        if self._stream.ranges and size:
            self._buffered.close()
            ranged = http.RangeFile(
                self._client, self._stream.final_url, size, self._allow_private, self._count_bytes
            )
            self.downloaded = 0
            self._closers.append(ranged)
            fileobj: Any = io.BufferedReader(ranged, 1 << 16)
        else:
            fileobj, size = self._spool()
        try:
            return zipfile.ZipFile(fileobj), size
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ArchiveError(f"the zip archive is truncated or corrupt: {exc}") from exc

    def _spool(self) -> tuple[BinaryIO, int]:
        """Copy the archive (only) to a temporary file, deleted when closed; return it and
        its size."""
        self.warn("the server does not support Range requests: spooling the zip to disk")
        try:
            if self._spool_dir:
                os.makedirs(self._spool_dir, exist_ok=True)
            spool = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115 (closed by close)
            self._closers.append(spool)
            while data := self._buffered.read(1 << 20):
                if spool.tell() + len(data) > self.limits.max_bytes:
                    raise ArchiveError(
                        f"the archive is larger than {self.limits.max_bytes} bytes; "
                        "raise --max-size if it is genuine"
                    )
                spool.write(data)
        except OSError as exc:  # the disk: NoSpaceError when full
            raise storage_error(exc, f"spool the zip to {self._spool_dir}") from exc
        size = spool.tell()
        spool.seek(0)
        return spool, size

    def _zip_entries(self) -> Iterator[SourceEntry]:
        zf, archive_size = self._zip_file()
        self._closers.append(zf)
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        declared = sum(i.file_size for i in infos)
        if declared > self.limits.max_ratio * max(archive_size, RATIO_FLOOR):
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
                with Member(zf.open(info), path) as f:
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
