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
import stat
import struct
import threading
from collections.abc import Callable

from grid.client import DIR, SYMLINK, EntryLike, VersionReader
from grid.errors import IntegrityError, NotFoundError, StorageError
from grid.mount import protocol as p
from grid.mount.session import FuseError

log = logging.getLogger("grid.mount")

TIMEOUT = 24 * 3600  # immutable data: the kernel may cache entries and attributes for a day
_SMALLEST_PLUS = 160  # bytes of a READDIRPLUS record with a name of up to 8 bytes
_SMALLEST = 32  # of a READDIR record


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

    def readdir(self, ino: int, offset: int, size: int, plus: bool) -> bytes:
        """Children of folder ``ino`` after the one whose entry id is ``offset`` (children
        are stored in name order), as many records as fit in ``size`` bytes. The hot loop of
        ``ls -l``: one struct per entry, from bare manifest rows."""
        if self._get(ino).kind != DIR:
            raise FuseError(errno.ENOTDIR)
        snap = self.snap
        after = snap.entry(offset).name if offset else ""
        # Kernels before 6.16 ask a page (4 KiB) at a time: fetch about as many as fit.
        limit = max(2, size // (_SMALLEST_PLUS if plus else _SMALLEST) + 1)
        out: list[bytes] = []
        used = 0
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
                        return b"".join(out)
                    out.append(record)
                if len(rows) < limit:
                    return b"".join(out)
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
