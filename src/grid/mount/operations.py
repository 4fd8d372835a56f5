"""pyfuse3 operations over a version: lookups and listings from the manifest only, reads
fetched lazily blob by blob and verified. Data is immutable, so the kernel may cache entries,
attributes and pages for as long as it likes.

The operations keep no state a request depends on (file and directory handles are inode
numbers, a listing resumes after the entry id it stopped at), so several worker processes can
serve one mount: each opens its own snapshot on first use.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from typing import Any

import pyfuse3

from grid.client import DIR, SYMLINK, EntryLike, VersionReader
from grid.errors import IntegrityError, NotFoundError, StorageError

log = logging.getLogger("grid.mount")

_TIMEOUT = 24 * 3600.0  # immutable data: the kernel may cache entries and attributes for a day


def _inode(entry_id: int) -> int:
    return entry_id + 1  # manifest root is id 0, FUSE's root inode is 1


class GridOperations(pyfuse3.Operations):
    """One version as a read-only filesystem."""

    def __init__(self, open_snapshot: Callable[[], VersionReader]) -> None:
        super().__init__()
        self._open_snapshot = open_snapshot
        self._snap: VersionReader | None = None
        self._pid = 0
        self.uid, self.gid = os.getuid(), os.getgid()
        self._entries: dict[int, EntryLike] = {}
        self._inodes = 0  # entries in the version, root included (0: not counted yet)
        self.initialized = False

    def init(self) -> None:
        self.initialized = True

    @property
    def snap(self) -> VersionReader:
        """This process's snapshot (opened on first use: SQLite must not cross a fork)."""
        if self._snap is None or self._pid != os.getpid():
            self._snap, self._pid = self._open_snapshot(), os.getpid()
            self._entries, self._inodes = {}, 0
        return self._snap

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
                raise pyfuse3.FUSEError(errno.ENOENT) from exc
            self._entries[inode] = entry
        return entry

    def _attrs(self, e: EntryLike) -> Any:
        a = pyfuse3.EntryAttributes()
        a.st_ino = _inode(e.id)
        a.st_mode = e.mode
        a.st_nlink = 2 if e.kind == DIR else 1
        a.st_size = e.size
        a.st_uid, a.st_gid = self.uid, self.gid
        a.st_atime_ns = a.st_ctime_ns = a.st_mtime_ns = e.mtime_ns
        a.st_blksize = 1 << 20
        a.st_blocks = (e.size + 511) // 512
        a.entry_timeout = a.attr_timeout = _TIMEOUT
        return a

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
        try:
            entry = self.snap.child(parent_inode - 1, name.decode())
        except (NotFoundError, UnicodeDecodeError) as exc:
            raise pyfuse3.FUSEError(errno.ENOENT) from exc
        self._entries[_inode(entry.id)] = entry
        return self._attrs(entry)

    async def getattr(self, inode: int, ctx: Any = None) -> Any:
        return self._attrs(self._get(inode))

    async def forget(self, inode_list: Any) -> None:
        for inode, _ in inode_list:
            self._entries.pop(inode, None)

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        entry = self._get(inode)
        if entry.kind != SYMLINK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return (entry.target or "").encode()

    async def opendir(self, inode: int, ctx: Any) -> int:
        if self._get(inode).kind != DIR:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        # The offset handed to the kernel is the entry id of the last child returned; children
        # of a directory are stored in name order, so the next page starts after its name.
        after = self.snap.entry(start_id).name if start_id else ""
        while True:
            page = self.snap.children(fh - 1, after, 256)
            if not page:
                return
            for entry in page:
                if not pyfuse3.readdir_reply(
                    token, entry.name.encode(), self._attrs(entry), entry.id
                ):
                    return
                self._entries[_inode(entry.id)] = entry
            after = page[-1].name

    async def releasedir(self, fh: int) -> None:
        return None

    async def open(self, inode: int, flags: int, ctx: Any) -> Any:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise pyfuse3.FUSEError(errno.EROFS)
        entry = self._get(inode)
        if not stat.S_ISREG(entry.mode):
            raise pyfuse3.FUSEError(errno.EISDIR if entry.kind == DIR else errno.EINVAL)
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        entry = self._get(fh)
        try:
            return self.snap.read(entry, off, size)
        except (IntegrityError, StorageError) as exc:
            log.error("EIO reading %s: %s", self.snap.path_of(entry.id), exc)
            raise pyfuse3.FUSEError(errno.EIO) from exc

    async def release(self, fh: int) -> None:
        return None

    async def statfs(self, ctx: Any) -> Any:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 1 << 20
        s.f_blocks = (self.snap.version.size + s.f_bsize - 1) // s.f_bsize
        s.f_bfree = s.f_bavail = 0
        s.f_files = self._count_inodes()
        s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s
