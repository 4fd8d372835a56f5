"""Download a version into a folder: the same tree, modes, mtimes and symlinks, resumable.

Nothing is written through a name that the version or DEST controls. Every file and link is made
in a private temporary folder inside DEST (a fresh random name, mode 0700, never a version's
entry), complete with its mode and mtime, then renamed to its place; so a finished file is one
whose size and mtime match the manifest, and ``resume`` skips those. Paths are opened one
component at a time relative to their parent folder's descriptor without following symlinks,
so no link (one the version made earlier in the same download, or one already in DEST) can
redirect a write outside DEST: a link in the way is replaced, never followed. DEST itself may
be a link to a folder; it is written into. The temporary folder is removed at the end, also on
errors.

Neighbouring blobs are fetched together in spans of up to ``_SPAN_BYTES`` (large sequential
reads, ``_AHEAD`` of them in flight) and written at their offsets by a few threads, so memory
stays bounded whatever the file sizes (about six spans, 48 MiB, at most). A blob of zeros is
not written: it stays a hole, and the file is truncated to its size at the end.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import stat
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from grid.errors import (
    DestinationError,
    DestinationFullError,
    IntegrityError,
    PathNotFoundError,
    StorageError,
    UsageError,
)
from grid.records import VersionInfo
from grid.service.context import Context
from grid.service.resolve import readable_version, reading
from grid.store.manifest import DIR, FILE, SYMLINK, BlobLocation, Entry, ManifestReader
from grid.store.reader import blob_starts

_SPAN_BYTES = 8 << 20  # stored (and original) bytes of one read
_SPAN_FILES = 4096  # files in one span (empty files cost no bytes)
_AHEAD = 2  # spans being fetched while an earlier one is written
_WRITERS = 4
_DIR_FDS = 64  # folder descriptors kept open (least recently used closed first)
TEMP_PREFIX = ".grid-download-"

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_IN_THE_WAY = (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)


@dataclass
class DownloadReport:
    version: VersionInfo
    files: int = 0
    skipped: int = 0
    bytes: int = 0


def download(
    ctx: Context,
    name: str,
    number: int | None,
    dest: str,
    *,
    force: bool = False,
    resume: bool = False,
    progress: Callable[[DownloadReport], None] | None = None,
) -> DownloadReport:
    """Materialise a version under ``dest`` (created if missing; a link to a folder is
    written into).

    Raises:
        UsageError: ``dest`` is not empty and neither ``force`` nor ``resume`` was given.
        IntegrityError: stored data is damaged (nothing wrong is written under a final name).
        StorageError: ``dest`` cannot be written, or holds a folder where the version has a
            file (NoSpaceError when its disk is full); the message names the path.
    """
    dest = os.path.abspath(dest)
    busy = os.path.isdir(dest) and bool(os.listdir(dest))
    if busy and not (force or resume):
        readable_version(ctx, name, number)  # a bad name or version is the first thing to say
        raise UsageError(
            f"{dest} is not empty: pass --resume to finish an earlier download there, or --force "
            "to write into it anyway",
            rule="DEST must be empty or missing",
        )
    with reading(ctx, name, number) as version:  # not deleted while it downloads
        report = DownloadReport(version)
        manifest = ctx.store.open_manifest(version.manifest_id)
        try:
            with _Dest(dest, lambda n: _in_version(manifest, n)) as out:
                _Download(ctx, manifest, out, report, progress, check=busy, resume=resume).run()
        finally:
            manifest.close()
    return report


def _in_version(manifest: ManifestReader, name: str) -> bool:
    try:
        manifest.stat(name)
    except PathNotFoundError:
        return False
    return True


def _split(path: str) -> tuple[str, str]:
    """(parent folder, name) of a manifest path, refusing one that could leave DEST."""
    parts = path.split("/")
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise IntegrityError(f"manifest holds an unsafe path {path!r}")
    return "/".join(parts[:-1]), parts[-1]


def _dest_error(exc: OSError, path: str, dest: str) -> StorageError:
    """An error about DEST that names DEST and the path (never GRID_HOME)."""
    reason = exc.strerror or str(exc)
    what = "the destination" if path == dest else f"{path} in the destination"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DestinationFullError(
            f"no space left to write {what} {dest}: {reason} (free space on the destination's "
            "disk or choose another destination)",
            path=path,
        )
    return DestinationError(
        f"cannot write {what} {dest}: {reason} (check that the destination is writable, or "
        "choose another)",
        path=path,
    )


def _in_the_way(path: str, dest: str, there: str, wanted: str) -> StorageError:
    return DestinationError(
        f"cannot write {path} in the destination {dest}: {there} is there and the version has "
        f"{wanted}; move it away and retry",
        path=path,
    )


class _Dest:
    """DEST opened as a folder descriptor, a private temporary folder in it, and descriptors of
    the folders below it, each opened relative to its parent without following links."""

    def __init__(self, path: str, taken: Callable[[str], bool]) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._users: dict[str, int] = {}
        self._names = itertools.count()
        self.temp = -1
        self.temp_name = ""
        try:
            os.makedirs(path, exist_ok=True)
            self.root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _dest_error(exc, path, path) from exc
        try:
            self._make_temp(taken)
        except BaseException:
            os.close(self.root)
            raise

    def _make_temp(self, taken: Callable[[str], bool]) -> None:
        for _ in range(100):
            name = TEMP_PREFIX + secrets.token_hex(6)
            if taken(name):  # the version has this very name at its top: pick another
                continue
            try:
                os.mkdir(name, 0o700, dir_fd=self.root)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _dest_error(exc, self.path, self.path) from exc
            self.temp_name = name
            try:
                self.temp = os.open(name, _OPEN_DIR, dir_fd=self.root)
            except OSError as exc:
                raise _dest_error(exc, self.full(name), self.path) from exc
            return
        raise DestinationError(
            f"cannot make a temporary folder in the destination {self.path}", path=self.path
        )

    def __enter__(self) -> _Dest:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.remove_temp()
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
        os.close(self.root)

    def full(self, rel: str) -> str:
        return os.path.join(self.path, rel) if rel else self.path

    def error(self, exc: OSError, rel: str) -> StorageError:
        return _dest_error(exc, self.full(rel), self.path)

    def temp_file(self) -> str:
        return format(next(self._names), "x")

    def remove_temp(self) -> None:
        """Remove the temporary folder and whatever a failure left in it."""
        if self.temp < 0:
            return
        try:
            for name in os.listdir(self.temp):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=self.temp)
        finally:
            os.close(self.temp)
            self.temp = -1
        os.rmdir(self.temp_name, dir_fd=self.root)

    @contextlib.contextmanager
    def folder(self, rel: str) -> Iterator[int]:
        """A descriptor of folder ``rel`` ('' is DEST), valid inside the block."""
        fd = self._acquire(rel)
        try:
            yield fd
        finally:
            self._release(rel)

    def _acquire(self, rel: str) -> int:
        if not rel:
            return self.root
        with self._lock:
            fd = self._fds.get(rel)
            if fd is not None:
                self._fds.move_to_end(rel)
                self._users[rel] = self._users.get(rel, 0) + 1
                return fd
        parent, _, name = rel.rpartition("/")
        with self.folder(parent) as parent_fd:
            try:
                fd = os.open(name, _OPEN_DIR, dir_fd=parent_fd)
            except OSError as exc:
                raise self.error(exc, rel) from exc
        with self._lock:
            known = self._fds.get(rel)
            if known is not None:  # another thread opened it meanwhile
                os.close(fd)
                fd = known
            self._fds[rel] = fd
            self._users[rel] = self._users.get(rel, 0) + 1
        return fd

    def _release(self, rel: str) -> None:
        if not rel:
            return
        with self._lock:
            left = self._users[rel] - 1
            if left:
                self._users[rel] = left
            else:
                del self._users[rel]
            if len(self._fds) > _DIR_FDS:
                for old in [k for k in self._fds if k not in self._users]:
                    os.close(self._fds.pop(old))
                    if len(self._fds) <= _DIR_FDS:
                        break

    def lstat(self, parent: str, name: str) -> os.stat_result | None:
        rel = f"{parent}/{name}" if parent else name
        with self.folder(parent) as fd:
            try:
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise self.error(exc, rel) from exc

    def mkdir(self, parent: str, name: str) -> None:
        """Make folder ``name`` in ``parent``; one already there is kept, a link replaced."""
        rel = f"{parent}/{name}" if parent else name
        with self.folder(parent) as fd:
            try:
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                    return
                except FileExistsError:
                    pass
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    return
                if not stat.S_ISLNK(st.st_mode):
                    raise _in_the_way(self.full(rel), self.path, "a file", "a folder")
                os.unlink(name, dir_fd=fd)
                os.mkdir(name, 0o777, dir_fd=fd)
            except OSError as exc:
                raise self.error(exc, rel) from exc

    def place(self, temp: str, parent: str, name: str, kind: str) -> None:
        """Rename ``temp`` from the temporary folder to ``name`` in ``parent`` (replacing a
        file or link there; a folder there is an error naming it)."""
        rel = f"{parent}/{name}" if parent else name
        with self.folder(parent) as fd:
            try:
                os.rename(temp, name, src_dir_fd=self.temp, dst_dir_fd=fd)
            except OSError as exc:
                if exc.errno in _IN_THE_WAY:
                    raise _in_the_way(self.full(rel), self.path, "a folder", kind) from exc
                raise self.error(exc, rel) from exc


@dataclass(eq=False)
class _File:
    """A file being written in the temporary folder; its pieces may arrive on any thread."""

    entry: Entry
    parent: str
    name: str
    starts: list[int]
    left: int  # blobs not written yet
    fd: int = -1
    temp: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Piece:
    file: _File
    first: int  # index of its first blob in the file
    locs: list[BlobLocation]


class _Download:
    def __init__(
        self,
        ctx: Context,
        manifest: ManifestReader,
        dest: _Dest,
        report: DownloadReport,
        progress: Callable[[DownloadReport], None] | None,
        *,
        check: bool,
        resume: bool,
    ) -> None:
        self.ctx = ctx
        self.manifest = manifest
        self.dest = dest
        self.report = report
        self.progress = progress
        self.check = check  # DEST had entries: look before writing
        self.resume = resume
        self.dirs: list[Entry] = []
        self.open: set[_File] = set()
        self.lock = threading.Lock()

    def run(self) -> None:
        fetcher = ThreadPoolExecutor(_AHEAD, thread_name_prefix="grid-fetch")
        writers = ThreadPoolExecutor(_WRITERS, thread_name_prefix="grid-write")
        try:
            fetching: deque[tuple[list[_Piece], Future[list[bytes]]]] = deque()
            writing: list[tuple[_Piece, Future[bool]]] = []
            for span in self._spans():
                locs = [loc for piece in span for loc in piece.locs]
                fetching.append((span, fetcher.submit(self.ctx.store.read_blobs, locs)))
                if len(fetching) > _AHEAD:
                    writing = self._write(writers, *fetching.popleft(), writing)
            while fetching:
                writing = self._write(writers, *fetching.popleft(), writing)
            self._collect(writing)
        finally:
            fetcher.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True, cancel_futures=True)
            for f in self.open:  # files a failure left unfinished
                with contextlib.suppress(OSError):
                    os.close(f.fd)
        try:
            self.dest.remove_temp()  # before the folders' mtimes: removing it touches DEST's
        except OSError as exc:
            raise self.dest.error(exc, self.dest.temp_name) from exc
        for entry in reversed(self.dirs):  # after the files: writing into a dir bumps mtime
            try:
                with self.dest.folder(entry.path) as fd:
                    os.fchmod(fd, entry.mode & 0o7777)
                    os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            except OSError as exc:
                raise self.dest.error(exc, entry.path) from exc

    def _write(
        self,
        writers: ThreadPoolExecutor,
        span: list[_Piece],
        fetched: Future[list[bytes]],
        previous: list[tuple[_Piece, Future[bool]]],
    ) -> list[tuple[_Piece, Future[bool]]]:
        """Hand a fetched span to the writers once the span before it is written (so at most
        two spans of blobs wait in memory besides the ones being fetched)."""
        data = fetched.result()
        self._collect(previous)
        out = []
        i = 0
        for piece in span:
            n = len(piece.locs)
            out.append((piece, writers.submit(self._write_piece, piece, data[i : i + n])))
            i += n
        return out

    def _collect(self, writing: list[tuple[_Piece, Future[bool]]]) -> None:
        for piece, fut in writing:
            if fut.result():
                self.report.files += 1
                self.report.bytes += piece.file.entry.size
        if writing and self.progress is not None:
            self.progress(self.report)

    # -- planning (main thread): folders and links now, files as spans of blobs to fetch -----
    def _spans(self) -> Iterator[list[_Piece]]:
        span: list[_Piece] = []
        stored = raw = 0
        for entry in self.manifest.walk():
            parent, name = _split(entry.path)
            if entry.kind == DIR:
                self.dest.mkdir(parent, name)
                self.dirs.append(entry)
            elif entry.kind == SYMLINK:
                self._symlink(entry, parent, name)
            elif entry.kind == FILE:
                blobs = self._file_blobs(entry, parent, name)
                if blobs is None:
                    continue
                f = _File(entry, parent, name, blob_starts(blobs), len(blobs))
                piece = _Piece(f, 0, [])
                for i, loc in enumerate(blobs):
                    if (stored or raw) and (
                        stored + loc.stored_length > _SPAN_BYTES
                        or raw + loc.raw_length > _SPAN_BYTES
                    ):  # the span is full: the rest of this file goes to the next ones
                        if piece.locs:
                            span.append(piece)
                        yield span
                        span, stored, raw = [], 0, 0
                        piece = _Piece(f, i, [])
                    piece.locs.append(loc)
                    stored += loc.stored_length
                    raw += loc.raw_length
                span.append(piece)
                if len(span) >= _SPAN_FILES:
                    yield span
                    span, stored, raw = [], 0, 0
        if span:
            yield span

    def _file_blobs(self, entry: Entry, parent: str, name: str) -> list[BlobLocation] | None:
        """The blobs to write for a file, or None when ``resume`` finds it finished."""
        if self.check:
            st = self.dest.lstat(parent, name)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise _in_the_way(self.dest.full(entry.path), self.dest.path, "a folder", "a file")
            if (
                self.resume
                and st is not None
                and stat.S_ISREG(st.st_mode)
                and st.st_size == entry.size
                and st.st_mtime_ns == entry.mtime_ns
            ):
                self.report.skipped += 1
                return None
        blobs = self.manifest.blobs(entry)
        if sum(b.raw_length for b in blobs) != entry.size:
            raise IntegrityError(f"manifest entry {entry.path!r} has blobs of another size")
        return blobs

    def _symlink(self, entry: Entry, parent: str, name: str) -> None:
        target = entry.target or ""
        if self.check:
            st = self.dest.lstat(parent, name)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise _in_the_way(
                    self.dest.full(entry.path), self.dest.path, "a folder", "a symlink"
                )
            if st is not None and stat.S_ISLNK(st.st_mode) and st.st_mtime_ns == entry.mtime_ns:
                with self.dest.folder(parent) as fd, contextlib.suppress(OSError):
                    if os.readlink(name, dir_fd=fd) == target:
                        return
        temp = self.dest.temp_file()
        try:
            os.symlink(target, temp, dir_fd=self.dest.temp)
            os.utime(
                temp,
                ns=(entry.mtime_ns, entry.mtime_ns),
                dir_fd=self.dest.temp,
                follow_symlinks=False,
            )
        except OSError as exc:
            raise self.dest.error(exc, entry.path) from exc
        self.dest.place(temp, parent, name, "a symlink")

    # -- writing (writer threads) ------------------------------------------------------------
    def _write_piece(self, piece: _Piece, blocks: list[bytes]) -> bool:
        """Write a piece's blobs at their offsets; return whether that finished the file."""
        f = piece.file
        try:
            fd = self._opened(f)
            pos = f.starts[piece.first] if blocks else 0
            for block in blocks:
                if not _zeros(block):
                    _pwrite(fd, block, pos)
                pos += len(block)
            with f.lock:
                f.left -= len(blocks)
                if f.left:
                    return False
            os.ftruncate(fd, f.entry.size)
            os.fchmod(fd, f.entry.mode & 0o7777)
            os.utime(fd, ns=(f.entry.mtime_ns, f.entry.mtime_ns))
            with self.lock:
                self.open.discard(f)
            f.fd = -1
            os.close(fd)
        except OSError as exc:
            raise self.dest.error(exc, f.entry.path) from exc
        self.dest.place(f.temp, f.parent, f.name, "a file")
        return True

    def _opened(self, f: _File) -> int:
        with f.lock:
            if f.fd < 0:
                f.temp = self.dest.temp_file()
                f.fd = os.open(f.temp, _CREATE, 0o600, dir_fd=self.dest.temp)
                with self.lock:
                    self.open.add(f)
            return f.fd


def _zeros(block: bytes) -> bool:
    """Whether a blob is all zero bytes (cheap for the usual blob: its ends are checked first)."""
    n = len(block)
    return n > 0 and block[0] == 0 and block[-1] == 0 and block[n // 2] == 0 and block.count(0) == n


def _pwrite(fd: int, data: bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        view = view[n:]
        pos += n
