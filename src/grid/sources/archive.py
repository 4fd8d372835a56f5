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
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from grid.errors import ArchiveError, SourceError, UsageError
from grid.sources.archive_rules import MAX_PATH_BYTES, RATIO_FLOOR, ArchiveLimits, shown
from grid.sources.archive_tree import ArchiveTree
from grid.sources.inflate import Body, Forward, Holes, Inflater, Member
from grid.sources.tar_headers import BoundedTarFile, BoundedTarInfo, invalid_field, sparse_holes
from grid.sources.zip_members import (
    check_declared_size,
    check_readable,
    open_member,
    open_zip,
    spool,
    zip_mtime,
    zip_name,
)
from grid.tree import SourceDefaults, SourceEntry, Warn

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


class ArchiveSource(SourceDefaults):
    """The tree inside an archive at ``url``.

    Args:
        url: http(s) URL of the archive (or, with ``body``, what the archive is called).
        warn: where non-fatal problems are reported.
        limits: decompression-bomb bounds.
        allow_private: allow hosts on internal addresses (see ``grid.sources.http``).
        spool_dir: where a zip from a server without Range support is spooled.
        body: the archive's bytes, already at hand (a browser's upload), of ``size`` bytes.

    Raises:
        UsageError: not an http(s) URL, refused, not found, or not an archive.
        SourceError: the server could not be reached or failed.
    """

    sequential = True
    noun = "archive"

    def __init__(
        self,
        url: str,
        warn: Warn | None = None,
        *,
        limits: ArchiveLimits | None = None,
        allow_private: bool = True,
        spool_dir: str | None = None,
        body: BinaryIO | None = None,
        size: int | None = None,
    ) -> None:
        self.root = url
        self.warn = warn or (lambda _msg: None)
        self.limits = limits or ArchiveLimits()
        self.exclude: tuple[str, ...] = ()
        self._tree = ArchiveTree(self.limits, self.warn)
        self.hardlinks = self._tree.hardlinks  # see ArchiveTree
        self.dir_meta = self._tree.dir_meta
        self.downloaded = 0
        self._allow_private, self._spool_dir = allow_private, spool_dir
        self._client: Any = None
        self._current: Any = None
        self._pipe: Inflater | None = None
        self._closers: list[Any] = []
        try:
            self._stream = self._open(url, body, size)
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

    def _open(self, url: str, body: BinaryIO | None, size: int | None) -> Any:
        """The archive's bytes: ``body`` (already sent here, ``size`` bytes) or the URL's."""
        if body is not None:
            return Body(body, size, self._count_bytes)
        # here: httpx costs ~0.1 s to import, every command
        from grid.sources import http
        from grid.sources.http_stream import HttpStream

        self._client = http.client(self._allow_private)
        self._closers.append(self._client)
        return HttpStream(self._client, url, self._allow_private, self._count_bytes)

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

    def _add_holes(self, n: int, path: str) -> None:
        """Count ``n`` bytes of a sparse file's holes, just read as zeros, against the ratio:
        they cost no compressed byte, so a tiny archive could expand without bound."""
        pipe = self._pipe
        if pipe is None:
            return
        pipe.holes += n
        allowed = self.limits.max_ratio * max(self.downloaded, RATIO_FLOOR)
        if pipe.expanded + pipe.holes > allowed:
            raise ArchiveError(
                f"the archive expands more than {self.limits.max_ratio:g} times at "
                f"{shown(path)}, a sparse file whose holes count (a decompression bomb?); "
                "raise --max-ratio if it is genuine",
                path=path,
            )

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

    def _extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> Any:
        """A tar member's content; a sparse file's holes are counted as they are read."""
        content = tar.extractfile(member)
        runs: Any = member.sparse  # typeshed says bytes: it is a list of (offset, length)
        if runs is None:
            return content
        return Holes(content, runs, lambda n: self._add_holes(n, path))

    def _tar_entries(self) -> Iterator[SourceEntry]:
        pipe = Inflater(self._buffered, self.kind, lambda: self.downloaded, self.limits)
        self._pipe = pipe
        self._closers.append(pipe)
        try:
            forward: Any = Forward(pipe)
            tar = BoundedTarFile.open(fileobj=forward, mode="r:", tarinfo=BoundedTarInfo)
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
            if member.size < 0:  # a GNU sparse header's real size
                raise invalid_field(member.name, "size", member.size)
            path = self._tree.admit(member.name, member.size if member.isreg() else 0)
            if member.sparse is not None:
                sparse_holes(member, path)  # checks the map (holes are counted as read)
            mtime_ns = self._tree.mtime(member.mtime, path)
            mode = member.mode & _KEEP_BITS
            if member.isdir():
                yield from self._tree.folder(path, mode, mtime_ns)
            elif member.isreg():
                self._current = (path, lambda m=member, p=path: self._extract(tar, m, p))
                yield from self._tree.leaf(path, stat.S_IFREG | mode, member.size, mtime_ns)
            elif member.issym():
                yield from self._tree.symlink(path, member.linkname, mtime_ns)
            elif member.islnk():
                yield from self._tree.hardlink(path, member.linkname, stat.S_IFREG | mode, mtime_ns)
            else:
                device = member.ischr() or member.isblk()
                what = "device" if device else "FIFO" if member.isfifo() else "special entry"
                raise ArchiveError(
                    f"archive entry {shown(member.name)} is a {what}", path=member.name
                )

    def _zip_file(self) -> tuple[zipfile.ZipFile, int]:
        """The zip and the archive's size."""
        from grid.sources.http_ranges import RangeFile

        size = self._stream.total or 0
        if self._stream.ranges and size:
            self._buffered.close()
            ranged = RangeFile(
                self._client, self._stream.final_url, size, self._allow_private, self._count_bytes
            )
            self.downloaded = 0
            self._closers.append(ranged)
            fileobj: Any = io.BufferedReader(ranged, 1 << 16)
        else:
            self.warn("the server does not support Range requests: spooling the zip to disk")
            fileobj, size = spool(
                self._buffered, self.limits.max_bytes, self._spool_dir, self._closers.append
            )
        return open_zip(fileobj), size

    def _zip_entries(self) -> Iterator[SourceEntry]:
        zf, archive_size = self._zip_file()
        self._closers.append(zf)
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        check_declared_size(infos, archive_size, self.limits)
        for info in infos:
            name = zip_name(info)
            path = self._tree.admit(name, info.file_size)
            check_readable(info, name, path)
            unix = info.external_attr >> 16 if info.create_system == 3 else 0
            kind = stat.S_IFMT(unix)
            mtime_ns = zip_mtime(info)
            if info.is_dir():
                yield from self._tree.folder(path, (unix & _KEEP_BITS) or 0o755, mtime_ns)
            elif kind == stat.S_IFLNK:
                if info.file_size > MAX_PATH_BYTES:
                    raise ArchiveError(f"archive entry {shown(name)}: link too long", path=path)
                with Member(open_member(zf, info, name), path) as f:
                    target = f.read().decode("utf-8", "surrogateescape")
                yield from self._tree.symlink(path, target, mtime_ns)
            elif kind in (0, stat.S_IFREG):
                self._current = (path, lambda i=info, n=name: open_member(zf, i, n))
                mode = stat.S_IFREG | ((unix & _KEEP_BITS) or 0o644)
                yield from self._tree.leaf(path, mode, info.file_size, mtime_ns)
            else:
                raise ArchiveError(
                    f"archive entry {shown(name)} is a device, FIFO or socket", path=path
                )
