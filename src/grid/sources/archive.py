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

import calendar
import contextlib
import io
import os
import re
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from grid.errors import ArchiveError, GridError, SourceError, UsageError, storage_error
from grid.sources.archive_rules import (
    MAX_HEADER_BYTES,
    MAX_PATH_BYTES,
    MAX_TIME_NS,
    MIN_TIME_NS,
    RATIO_FLOOR,
    ArchiveLimits,
    clean_path,
    escapes,
    shown,
    time_ns,
)
from grid.sources.inflate import Forward, Holes, Inflater, Member
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
_TAR: Any = tarfile  # its header internals, which typeshed does not describe
_BLOCK = tarfile.BLOCKSIZE
_EXTENDED = {
    tarfile.XHDTYPE: "PAX",
    tarfile.XGLTYPE: "PAX global",
    tarfile.SOLARIS_XHDTYPE: "Solaris PAX",
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link",
}
_MAX_EXTENDED = 16  # extended headers before one entry (each one a level of tarfile's recursion)
_INTEGER = re.compile(r"[0-9]+\Z")  # ASCII digits only: int() also takes "1_0", " 1", "١"
_INTEGER_BYTES = re.compile(rb"[0-9]+\Z")
_PAX_INTEGERS = {
    *("size", "uid", "gid", "GNU.sparse.size", "GNU.sparse.realsize", "GNU.sparse.numblocks"),
    *("GNU.sparse.offset", "GNU.sparse.numbytes", "GNU.sparse.major", "GNU.sparse.minor"),
}
_PAX_TIMES = {"mtime", "atime", "ctime"}
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_METHOD_NAMES = {
    1: "Shrink",
    6: "Implode",
    9: "Deflate64",
    93: "Zstandard",
    95: "xz",
    96: "JPEG",
    97: "WavPack",
    98: "PPMd",
    99: "WinZip AES encryption",
}


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


def _zip_mtime(info: zipfile.ZipInfo) -> int:
    """A member's DOS time in ns; impossible fields (month 0, day 31 of February, hour 31),
    which a corrupt or careless writer leaves, are brought into range rather than refused."""
    year, month, day, hour, minute, second = info.date_time
    month = min(max(month, 1), 12)
    day = min(max(day, 1), calendar.monthrange(year, month)[1])
    when = datetime(year, month, day, min(hour, 23), min(minute, 59), min(second, 59))
    return time_ns(when.timestamp())


def _zip_open(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> IO[bytes]:
    """A member's content. Its local header is read here: a wrong signature, a name that
    differs from the central directory's or a method zipfile lacks refuses the archive."""
    try:
        return zf.open(info)
    except GridError:
        raise  # the download failed
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, ValueError) as exc:
        detail = str(exc)
        detail = detail if len(detail) <= 300 else detail[:300] + "…"
        raise ArchiveError(
            f"archive entry {shown(name)} cannot be read, the zip archive is corrupt: {detail}",
            path=name,
        ) from exc


def _invalid(name: str, field: str, value: object) -> ArchiveError:
    return ArchiveError(
        f"archive entry {shown(name)} has an invalid {field} in its header ({shown(str(value))})",
        path=name,
    )


def _pax_name(member: tarfile.TarInfo, pax_headers: dict[str, str]) -> str:
    return pax_headers.get("GNU.sparse.name") or pax_headers.get("path") or member.name


def _sparse_holes(member: tarfile.TarInfo, path: str) -> int:
    """The bytes of a sparse member that are holes: its size less its data. The map must be
    in order and within the size (tarfile would seek backwards, or loop, otherwise)."""
    end = data = 0
    runs: list[tuple[int, int]] = member.sparse or []  # type: ignore[assignment]  # not bytes
    for offset, numbytes in runs:
        if numbytes < 0 or offset < 0:
            raise ArchiveError(f"archive entry {shown(path)} has an invalid sparse map", path=path)
        if numbytes == 0:  # GNU tar's end marker (size, 0), and unused slots
            continue
        if offset < end or offset + numbytes > member.size:
            raise ArchiveError(
                f"archive entry {shown(path)} has an invalid sparse map (out of order, "
                "overlapping or beyond its size)",
                path=path,
            )
        end = offset + numbytes
        data += numbytes
    return member.size - data


class _Tar(tarfile.TarFile):
    """tarfile, counting the extended headers met before each entry (see ``_Header``)."""

    extended_count = 0
    extended_bytes = 0

    def next(self) -> tarfile.TarInfo | None:
        self.extended_count = self.extended_bytes = 0
        return super().next()


class _Header(tarfile.TarInfo):
    """A tar header read with bounds. tarfile reads an extended header (PAX, GNU long name)
    whole into memory, and a chain of them recursively: before one entry they may hold 16
    headers and 1 MiB, checked on the size field before a byte of them is read (as are GNU
    sparse maps). Numbers in PAX records must be numbers (tarfile makes ``size=abc`` 0, and
    ``GNU.sparse.size=abc`` a ValueError). A corrupt header after the first refuses the archive
    (tarfile would take it for the end)."""

    __slots__ = ()

    @classmethod
    def fromtarfile(cls, tar: Any) -> Any:
        at = tar.fileobj.tell()
        try:
            return super().fromtarfile(tar)
        except (_TAR.InvalidHeaderError, _TAR.TruncatedHeaderError) as exc:
            if at == 0:
                raise  # not a tar at all: tarfile.open says so
            raise ArchiveError(f"the archive is truncated or corrupt at byte {at}: {exc}") from None

    def _proc_member(self, tar: Any) -> Any:
        if self.size < 0:
            raise _invalid(self.name, "size", self.size)
        kind = _EXTENDED.get(self.type)
        if kind is not None:
            tar.extended_count += 1
            tar.extended_bytes += self.size
            if tar.extended_bytes > MAX_HEADER_BYTES:
                raise ArchiveError(
                    f"the archive has a {kind} header of {self.size} bytes at byte "
                    f"{self.offset}: the extended headers of one entry may hold 1 MiB at most "
                    "(a header bomb?)"
                )
            if tar.extended_count > _MAX_EXTENDED:
                raise ArchiveError(
                    f"the archive has more than {_MAX_EXTENDED} extended headers before one "
                    f"entry (at byte {self.offset})"
                )
        return super()._proc_member(tar)  # type: ignore[misc]

    def _proc_sparse(self, tar: Any) -> Any:
        """tarfile's, reading at most 1 MiB of sparse map."""
        structs, isextended, origsize = self._sparse_structs  # type: ignore[attr-defined]
        del self._sparse_structs  # type: ignore[attr-defined]
        blocks = 0
        while isextended:
            blocks += 1
            if blocks * _BLOCK > MAX_HEADER_BYTES:
                raise ArchiveError(
                    f"archive entry {shown(self.name)} has a sparse map over 1 MiB "
                    "(a header bomb?)",
                    path=self.name,
                )
            buf = tar.fileobj.read(_BLOCK)
            if len(buf) < _BLOCK:
                raise ArchiveError(
                    f"the archive is truncated or corrupt at {shown(self.name)}", path=self.name
                )
            for pos in range(0, 21 * 24, 24):
                try:
                    offset = _TAR.nti(buf[pos : pos + 12])
                    numbytes = _TAR.nti(buf[pos + 12 : pos + 24])
                except ValueError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
            isextended = bool(buf[504])
        self.sparse = structs
        self.offset_data = tar.fileobj.tell()
        tar.offset = self.offset_data + -(-self.size // _BLOCK) * _BLOCK
        self.size = origsize
        return self

    def _proc_gnusparse_01(self, next: Any, pax_headers: dict[str, str]) -> None:
        numbers = pax_headers["GNU.sparse.map"].split(",")
        if len(numbers) % 2 or not all(_INTEGER.match(n) for n in numbers):
            raise _invalid(_pax_name(next, pax_headers), "GNU.sparse.map", ",".join(numbers))
        next.sparse = [(int(a), int(b)) for a, b in zip(numbers[::2], numbers[1::2], strict=True)]

    def _proc_gnusparse_10(self, next: Any, pax_headers: dict[str, str], tar: Any) -> None:
        """tarfile's, reading at most 1 MiB of map and refusing what is not a number."""
        name = _pax_name(next, pax_headers)
        buf = tar.fileobj.read(_BLOCK)
        read = len(buf)
        count: int | None = None
        numbers: list[int] = []
        while count is None or len(numbers) < count * 2:
            if b"\n" not in buf:
                more = tar.fileobj.read(_BLOCK) if read < MAX_HEADER_BYTES else b""
                if not more:
                    raise ArchiveError(
                        f"archive entry {shown(name)} has a sparse map that is truncated or "
                        "over 1 MiB",
                        path=name,
                    )
                buf += more
                read += len(more)
                continue
            number, buf = buf.split(b"\n", 1)
            if not _INTEGER_BYTES.match(number):
                raise _invalid(name, "sparse map", number.decode("ascii", "replace"))
            if count is None:
                count = int(number)
            else:
                numbers.append(int(number))
        next.offset_data = tar.fileobj.tell()
        next.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))

    def _apply_pax_info(self, pax_headers: dict[str, str], encoding: str, errors: str) -> None:
        for key, value in pax_headers.items():
            if key in _PAX_INTEGERS:
                ok = _INTEGER.match(value) is not None
            elif key in _PAX_TIMES:
                try:
                    ok = float(value) == float(value)  # NaN is not
                except ValueError:
                    ok = False
            else:
                continue
            if not ok:
                raise _invalid(_pax_name(self, pax_headers), key, value)
        super()._apply_pax_info(pax_headers, encoding, errors)  # type: ignore[misc]


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
        # path, target, mode, mtime_ns, and the path of the entry yielded last before it
        # (its target must come no later: tar could not extract a link to a later entry)
        self.hardlinks: list[tuple[str, str, int, int, str]] = []
        self.dir_meta: dict[str, tuple[int, int]] = {}  # explicit folders: mode, mtime_ns
        self.downloaded = 0
        self._allow_private, self._spool_dir = allow_private, spool_dir
        self._client = http.client(allow_private)
        self._dirs: set[str] = {""}
        self._count = self._bytes = 0
        self._current: Any = None
        self._last: str | None = None  # the path of the entry yielded last
        self._pipe: Inflater | None = None
        self._clamped = False
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
        """Count an entry of ``size`` bytes (a sparse file's holes included) against the
        limits; return its path."""
        self._count += 1
        if self._count > self.limits.max_entries:
            raise ArchiveError(
                f"the archive has more than {self.limits.max_entries} entries "
                f"(at {shown(name)}); raise --max-files if it is genuine",
                path=name,
            )
        self._bytes += size
        if self._bytes > self.limits.max_bytes:
            raise ArchiveError(
                f"the archive expands to more than {self.limits.max_bytes} bytes "
                f"(at {shown(name)}); raise --max-size if it is genuine",
                path=name,
            )
        return clean_path(name)

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

    def _mtime(self, seconds: float, path: str) -> int:
        """``seconds`` in ns, clamped to what a manifest holds (about 1677 to 2262)."""
        ns = time_ns(seconds)
        if ns in (MIN_TIME_NS, MAX_TIME_NS) and not self._clamped:
            self._clamped = True
            self.warn(
                f"archive entry {shown(path)} is dated {seconds:g}, out of range: "
                "stored as the nearest time a version can hold (so is any other)"
            )
        return ns

    def _parents(self, path: str, mtime_ns: int) -> Iterator[SourceEntry]:
        """Folders above ``path`` not yet yielded, outermost first (a path may have 2,000
        levels: no recursion)."""
        missing = []
        parent = os.path.dirname(path)
        while parent not in self._dirs:
            missing.append(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(missing):
            self._dirs.add(folder)
            up, name = os.path.split(folder)
            self._last = folder
            yield SourceEntry(up, name, _DIR_MODE, 0, mtime_ns, None, folder)

    def _dir(self, path: str, mode: int, mtime_ns: int) -> Iterator[SourceEntry]:
        if path in self.dir_meta:
            raise ArchiveError(f"the archive holds the folder {shown(path)} twice", path=path)
        self.dir_meta[path] = (stat.S_IFDIR | mode, mtime_ns)
        if path and path not in self._dirs:
            yield from self._parents(path, mtime_ns)
            self._dirs.add(path)
            up, name = os.path.split(path)
            self._last = path
            yield SourceEntry(up, name, stat.S_IFDIR | mode, 0, mtime_ns, None, path)

    def _leaf(
        self, path: str, mode: int, size: int, mtime_ns: int, target: str | None = None
    ) -> Iterator[SourceEntry]:
        if not path:
            raise ArchiveError("the archive has a file entry for its root folder", path=path)
        yield from self._parents(path, mtime_ns)
        up, name = os.path.split(path)
        self._last = path
        yield SourceEntry(up, name, mode, size, mtime_ns, target, path)

    def _link(self, path: str, target: str, mtime_ns: int) -> Iterator[SourceEntry]:
        if not target or target.startswith("/") or "\0" in target:
            raise ArchiveError(
                f"archive entry {shown(path)} is a symlink to {shown(target)}, outside the archive",
                path=path,
            )
        size = len(target.encode("utf-8", "surrogateescape"))
        if size > MAX_PATH_BYTES:
            raise ArchiveError(
                f"archive entry {shown(path)} is a symlink to {shown(target)}, a target over "
                f"{MAX_PATH_BYTES} bytes",
                path=path,
            )
        yield from self._leaf(path, stat.S_IFLNK | 0o777, size, mtime_ns, target)

    def _hardlink(self, path: str, target: str, mode: int, mtime_ns: int) -> Iterator[SourceEntry]:
        try:
            target = clean_path(target)
        except ArchiveError as exc:
            why = "outside the archive" if escapes(target) else f"an invalid path ({exc.message})"
            raise ArchiveError(
                f"archive entry {shown(path)} is a hardlink to {shown(target)}, {why}",
                path=path,
            ) from exc
        if not path:
            raise ArchiveError("the archive has a hardlink for its root folder", path=path)
        before = self._last
        if before is None:
            raise ArchiveError(
                f"archive entry {shown(path)} is a hardlink to {shown(target)}, which is not a "
                "file earlier in the archive",
                path=path,
            )
        yield from self._parents(path, mtime_ns)
        self.hardlinks.append((path, target, mode, mtime_ns, before))

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
            tar = _Tar.open(fileobj=forward, mode="r:", tarinfo=_Header)
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
                raise _invalid(member.name, "size", member.size)
            path = self._admit(member.name, member.size if member.isreg() else 0)
            if member.sparse is not None:
                _sparse_holes(member, path)  # checks the map (holes are counted as read)
            mtime_ns = self._mtime(member.mtime, path)
            mode = member.mode & _KEEP_BITS
            if member.isdir():
                yield from self._dir(path, mode, mtime_ns)
            elif member.isreg():
                self._current = (path, lambda m=member, p=path: self._extract(tar, m, p))
                yield from self._leaf(path, stat.S_IFREG | mode, member.size, mtime_ns)
            elif member.issym():
                yield from self._link(path, member.linkname, mtime_ns)
            elif member.islnk():
                yield from self._hardlink(path, member.linkname, stat.S_IFREG | mode, mtime_ns)
            else:
                device = member.ischr() or member.isblk()
                what = "device" if device else "FIFO" if member.isfifo() else "special entry"
                raise ArchiveError(
                    f"archive entry {shown(member.name)} is a {what}", path=member.name
                )

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
            name = _zip_name(info)
            path = self._admit(name, info.file_size)
            if info.flag_bits & 0x1:
                raise ArchiveError(f"archive entry {shown(name)} is encrypted", path=path)
            if info.compress_type not in _ZIP_METHODS and not info.is_dir():
                method = f"compression method {info.compress_type}"
                if info.compress_type in _ZIP_METHOD_NAMES:
                    method += f" ({_ZIP_METHOD_NAMES[info.compress_type]})"
                raise ArchiveError(
                    f"archive entry {shown(name)} uses {method}, which is not supported: "
                    "re-make the archive with Deflate (the default of zip and of 7-Zip's zip)",
                    path=path,
                )
            unix = info.external_attr >> 16 if info.create_system == 3 else 0
            kind = stat.S_IFMT(unix)
            mtime_ns = _zip_mtime(info)
            if info.is_dir():
                yield from self._dir(path, (unix & _KEEP_BITS) or 0o755, mtime_ns)
            elif kind == stat.S_IFLNK:
                if info.file_size > MAX_PATH_BYTES:
                    raise ArchiveError(f"archive entry {shown(name)}: link too long", path=path)
                with Member(_zip_open(zf, info, name), path) as f:
                    target = f.read().decode("utf-8", "surrogateescape")
                yield from self._link(path, target, mtime_ns)
            elif kind in (0, stat.S_IFREG):
                self._current = (path, lambda i=info, n=name: _zip_open(zf, i, n))
                mode = stat.S_IFREG | ((unix & _KEEP_BITS) or 0o644)
                yield from self._leaf(path, mode, info.file_size, mtime_ns)
            else:
                raise ArchiveError(
                    f"archive entry {shown(name)} is a device, FIFO or socket", path=path
                )
