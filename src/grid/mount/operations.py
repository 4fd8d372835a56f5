"""A version as a read-only filesystem: lookups and listings from the manifest only, reads
fetched lazily blob by blob and verified. Data is immutable, so the kernel may cache entries,
attributes, pages and listings for as long as it likes.

The operations keep no state a request depends on (inode numbers are entry ids, a listing
resumes after the entry id it stopped at), so any thread of any worker process can answer any
request; each process opens its own snapshot on first use, shared by its threads.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import NamedTuple

from grid.client import DIR, SYMLINK, EntryLike, VersionReader
from grid.errors import IntegrityError, NotFoundError, StorageError
from grid.mount import protocol as p
from grid.mount.protocol import ROOT_ID
from grid.mount.session import FuseError

log = logging.getLogger("grid.mount")

TIMEOUT = 24 * 3600  # immutable data: the kernel may cache entries and attributes for a day
_SMALLEST_PLUS = 160  # bytes of a READDIRPLUS record with a name of up to 8 bytes
_SMALLEST = 32  # of a READDIR record
# A listing is answered in parts, each made while the kernel turns the last into dentries
# and inodes (kernels since 6.16 ask for as much as the reader's buffer holds, 1 MiB for
# glibc's readdir, which sizes it by st_blksize; one answer of all would keep the kernel
# waiting for all of it): the first part small, so that the kernel starts soon (about 100
# entries of short names), each next one twice the last, up to LAST_PART, so that a big
# folder costs few round trips.
FIRST_PART = 16 << 10
LAST_PART = 256 << 10
_AHEAD_MAX = 64  # parts made ahead and not asked for (listings abandoned half-way), at most


class _Part(NamedTuple):
    """A part of a folder's listing, as READDIR(PLUS) answers it."""

    data: bytes
    last: int  # entry id of its last entry: the offset the next part resumes after
    last_name: str
    end: bool  # no entry follows
    budget: int  # the bytes it was made to fit in


_Job = tuple["Future[_Part]", int, str, int, bool]  # (to fill, folder, after, size, plus)


def _inode(entry_id: int) -> int:
    return entry_id + 1  # manifest root is id 0, FUSE's root inode is 1


def _nlink(kind: int) -> int:
    return 2 if kind == DIR else 1


class GridOperations:
    """One version as a read-only filesystem (``grid.mount.session.Filesystem``)."""

    def __init__(self, open_snapshot: Callable[[], VersionReader]) -> None:
        self._open_snapshot = open_snapshot
        self._snap: VersionReader | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.uid, self.gid = os.getuid(), os.getgid()
        self._entries: dict[int, EntryLike] = {}
        self._inodes = 0  # entries in the version, root included (0: not counted yet)
        # Listing parts made ahead, by (folder, offset, plus) of the request that will ask.
        self._ahead: dict[tuple[int, int, bool], Future[_Part]] = {}
        self._jobs_pid = 0
        self._job_queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()

    @property
    def snap(self) -> VersionReader:
        """This process's snapshot (opened on first use: SQLite must not cross a fork)."""
        snap = self._snap
        if snap is None or self._pid != os.getpid():
            with self._lock:
                if self._snap is None or self._pid != os.getpid():
                    self._entries, self._inodes = {}, 0
                    self._snap, self._pid = self._open_snapshot(), os.getpid()
                snap = self._snap
        return snap

    def _count_inodes(self) -> int:
        """Every entry of the version (files, folders, symlinks) and the root: what ``df -i``
        shows as used. Entry ids are numbered from 1 with no gap (the manifest writer hands
        them out in order), so the count is the highest id that exists, found in about
        2 log2(n) lookups; counted once per process."""
        if not self._inodes:
            exists = self._exists
            high = 1
            while exists(high):
                high *= 2
            low = high // 2  # exists(low), or low == 0: the root only
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if exists(middle) else (low, middle)
            self._inodes = low + 1
        return self._inodes

    def _exists(self, entry_id: int) -> bool:
        try:
            self.snap.entry(entry_id)
        except NotFoundError:
            return False
        return True

    def close(self) -> None:
        if self._snap is not None and self._pid == os.getpid():
            self._snap.close()

    def _get(self, inode: int) -> EntryLike:
        entry = self._entries.get(inode)
        if entry is None:
            try:
                entry = self.snap.entry(inode - 1)
            except NotFoundError as exc:
                raise FuseError(errno.ENOENT) from exc
            self._entries[inode] = entry
        return entry

    def _attrs(self, e: EntryLike) -> p.Attributes:
        return p.Attributes(
            _inode(e.id), e.size, e.mode, _nlink(e.kind), self.uid, self.gid, e.mtime_ns
        )

    def lookup(self, parent: int, name: bytes) -> bytes:
        try:
            entry = self.snap.child(parent - 1, name.decode())
        except (NotFoundError, UnicodeDecodeError) as exc:
            raise FuseError(errno.ENOENT) from exc
        self._entries[_inode(entry.id)] = entry
        return p.entry_out(self._attrs(entry), TIMEOUT)

    def getattr(self, ino: int) -> bytes:
        return p.attr_out(self._attrs(self._get(ino)), TIMEOUT)

    def forget(self, inos: list[int]) -> None:
        for ino in inos:
            self._entries.pop(ino, None)

    def readlink(self, ino: int) -> bytes:
        entry = self._get(ino)
        if entry.kind != SYMLINK:
            raise FuseError(errno.EINVAL)
        return (entry.target or "").encode()

    def start(self) -> None:
        """Get this process ready to serve before the first request comes: open its snapshot,
        start the thread that makes listings ahead, and look up and list the root once, which
        prepares the queries and warms the code of a lookup and a listing (the first of each
        would otherwise take tenths of a millisecond more, with a first ``ls`` waiting)."""
        self._jobs()
        try:
            rows = self.snap.child_rows(ROOT_ID - 1, "", 1)
            self._part(ROOT_ID, "", FIRST_PART, True)
            if rows:
                self.lookup(ROOT_ID, str(rows[0][2]).encode())
        except (FuseError, IntegrityError, NotFoundError) as exc:  # damage: served as EIO
            log.warning("warming up the mount: %s", exc)

    def readdir(self, ino: int, offset: int, size: int, plus: bool) -> bytes:
        """Children of folder ``ino`` after the one whose entry id is ``offset`` (children
        are stored in name order), as many records as fit in ``size`` bytes, in parts (see
        ``FIRST_PART``): once a part is answered, the next is made in the background while the
        kernel takes this one."""
        part = None
        ahead = self._ahead.pop((ino, offset, plus), None)
        if ahead is not None:
            part = ahead.result()  # raises what making it raised (EIO of a damaged row)
        if part is None or len(part.data) > size:
            if self._get(ino).kind != DIR:
                raise FuseError(errno.ENOTDIR)
            after = self.snap.entry(offset).name if offset else ""
            part = self._part(ino, after, min(size, FIRST_PART), plus)
        if part.data:
            self._make_ahead(ino, part, min(size, 2 * part.budget, LAST_PART), plus)
        return part.data

    def _make_ahead(self, ino: int, part: _Part, size: int, plus: bool) -> None:
        """Start making the part of the listing that follows ``part``, which the kernel asks
        for next (resuming after its last entry); after the last part, the empty answer."""
        ahead: Future[_Part] = Future()
        if len(self._ahead) >= _AHEAD_MAX:
            self._ahead.clear()
        self._ahead[(ino, part.last, plus)] = ahead
        if part.end:
            ahead.set_result(_Part(b"", part.last, "", True, 0))
        else:
            self._jobs().put((ahead, ino, part.last_name, size, plus))

    def _jobs(self) -> queue.SimpleQueue[_Job]:
        """This process's queue of listing parts to make, and the thread making them (one per
        process: threads do not survive a fork)."""
        if self._jobs_pid != os.getpid():
            with self._lock:
                if self._jobs_pid != os.getpid():
                    self._job_queue = queue.SimpleQueue()
                    threading.Thread(
                        target=self._make_parts,
                        args=(self._job_queue,),
                        name="grid-listing",
                        daemon=True,
                    ).start()
                    self._jobs_pid = os.getpid()
        return self._job_queue

    def _make_parts(self, jobs: queue.SimpleQueue[_Job]) -> None:
        while True:
            ahead, ino, after, size, plus = jobs.get()
            try:
                ahead.set_result(self._part(ino, after, size, plus))
            except BaseException as exc:  # raised again to the request that takes it
                ahead.set_exception(exc)

    def _part(self, ino: int, after: str, size: int, plus: bool) -> _Part:
        """The records of folder ``ino``'s children after the name ``after`` that fit in
        ``size`` bytes. The hot loop of ``ls -l``: one struct per entry, from bare manifest
        rows."""
        snap = self.snap
        # Fetch about as many rows as fit (kernels before 6.16 ask a page at a time).
        limit = max(2, size // (_SMALLEST_PLUS if plus else _SMALLEST) + 1)
        out: list[bytes] = []
        used = last = 0
        last_name = after
        uid, gid, direntplus = self.uid, self.gid, p.direntplus
        try:
            while True:
                rows = snap.child_rows(ino - 1, after, limit)
                for entry_id, _parent, name, kind, length, mode, mtime_ns, _target, _blobs in rows:
                    node, raw = _inode(entry_id), name.encode()
                    if plus:
                        record = direntplus(
                            node, length, mode, _nlink(kind), uid, gid, mtime_ns,
                            raw, entry_id, TIMEOUT,
                        )  # fmt: skip
                    else:
                        record = p.dirent(node, mode, raw, entry_id)
                    used += len(record)
                    if used > size:
                        return _Part(b"".join(out), last, last_name, False, size)
                    out.append(record)
                    last, last_name = entry_id, name
                if len(rows) < limit:
                    return _Part(b"".join(out), last, last_name, True, size)
                after = rows[-1][2]
        except (struct.error, TypeError, ValueError, AttributeError, OverflowError) as exc:
            log.error("EIO listing %s: damaged manifest row: %s", snap.path_of(ino - 1), exc)
            raise FuseError(errno.EIO) from exc

    def read(self, ino: int, offset: int, size: int) -> bytes:
        entry = self._get(ino)
        if not stat.S_ISREG(entry.mode):
            raise FuseError(errno.EISDIR if entry.kind == DIR else errno.EINVAL)
        try:
            return self.snap.read(entry, offset, size)
        except (IntegrityError, StorageError) as exc:
            log.error("EIO reading %s: %s", self.snap.path_of(entry.id), exc)
            raise FuseError(errno.EIO) from exc

    def statfs(self) -> bytes:
        blocks = (self.snap.version.size + p.BLOCK_SIZE - 1) // p.BLOCK_SIZE
        return p.statfs_out(blocks, self._count_inodes(), p.BLOCK_SIZE)
