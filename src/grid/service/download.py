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
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from grid.errors import (
    IntegrityError,
    PathNotFoundError,
    UsageError,
)
from grid.reports import DownloadReport
from grid.service.browse import opened
from grid.service.context import Context
from grid.service.destination import (
    CREATE,
    Destination,
    in_the_way,
    split_path,
)
from grid.service.resolve import readable_version
from grid.store.manifest import DIR, FILE, SYMLINK, BlobLocation, Entry
from grid.store.manifest_reader import ManifestReader
from grid.store.reader import blob_starts

_SPAN_BYTES = 8 << 20  # stored (and original) bytes of one read
_SPAN_FILES = 4096  # files in one span (empty files cost no bytes)
_AHEAD = 2  # spans being fetched while an earlier one is written
_WRITERS = 4


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
    with opened(ctx, name, number) as (version, manifest):  # not deleted while it downloads
        report = DownloadReport(version)
        with Destination(dest, lambda n: _in_version(manifest, n)) as out:
            _Download(ctx, manifest, out, report, progress, check=busy, resume=resume).run()
    return report


def _in_version(manifest: ManifestReader, name: str) -> bool:
    try:
        manifest.stat(name)
    except PathNotFoundError:
        return False
    return True


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
        dest: Destination,
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
            parent, name = split_path(entry.path)
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
                raise in_the_way(self.dest.full(entry.path), self.dest.path, "a folder", "a file")
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
                raise in_the_way(
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
                f.fd = os.open(f.temp, CREATE, 0o600, dir_fd=self.dest.temp)
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
