"""Object store in a local directory: one file per object, written under a temporary name and
renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from grid.errors import NotFoundError, StorageError, storage_error
from grid.objects.base import Buffer, ObjectInfo, ObjectStore, validate_key
from grid.objects.direct_io import Bounce, write_new

_TMP_SUFFIX = ".tmp"
_IOV_MAX = 1024  # Linux IOV_MAX; writev takes at most this many buffers per call
_OPEN_READERS = 64
_ADVISE_MIN = 1 << 20  # get_ranges asks the kernel to read spans at least this long ahead


def _storage_error(exc: OSError, key: str) -> StorageError:
    return storage_error(exc, f"store or read object {key}", key=key)


class LocalDirectory(ObjectStore):
    """Objects as files under ``root``.

    Args:
        root: directory holding the objects (created if missing).
        durable: ``sync`` fsyncs objects and their directories, so that a synced object
            survives a power cut (as restic and borg do). ``put`` writes with O_DIRECT where
            the filesystem allows (the bytes reach the disk without a page-cache copy), else
            buffered with the disk write started at once; ``sync`` then waits for the rest.
            Without ``durable`` objects survive a crash of the process but maybe not of the
            machine.
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.root = os.fspath(root)
        self.durable = durable
        os.makedirs(self.root, exist_ok=True)
        self._made_dirs: set[str] = set()
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._users: dict[int, int] = {}
        self._fds_lock = threading.Lock()
        # puts write with O_DIRECT (grid.objects.direct_io): less CPU with or without fsync
        self._direct = hasattr(os, "O_DIRECT")
        self._bounce = Bounce()

    def _path(self, key: str) -> str:
        return os.path.join(self.root, validate_key(key))

    def put(self, key: str, parts: Sequence[Buffer]) -> int:
        path = self._path(key)
        folder = os.path.dirname(path)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        tmp = f"{path}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}"
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        try:
            total = write_new(tmp, views, self._bounce) if self._direct else None
            if total is None:  # the filesystem refuses O_DIRECT (tmpfs): buffered from now on
                self._direct = False
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    total = _write_all(fd, views)
                    if self.durable:
                        # start writeback now (asynchronously); sync() later waits for the rest
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            _remove_quietly(tmp)
            raise _storage_error(exc, key) from exc
        self._forget_reader(key)
        return total

    def sync(self, keys: Sequence[str]) -> None:
        if not self.durable:
            return
        folders = set()
        for key in keys:
            path = self._path(key)
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise _storage_error(exc, key) from exc
            folders.add(os.path.dirname(path))
        for folder in folders:
            _fsync_dir(folder)

    def put_file(self, key: str, path: str) -> int:
        target = self._path(key)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        tmp = f"{target}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}"
        try:
            shutil.copyfile(path, tmp)
            if self.durable:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, target)
            if self.durable:
                _fsync_dir(folder)
            return os.stat(target).st_size
        except OSError as exc:
            _remove_quietly(tmp)
            raise _storage_error(exc, key) from exc

    def copy(self, src: str, dst: str) -> int:
        source = self._path(src)
        if not os.path.exists(source):
            raise NotFoundError(f"object {src} not found", key=src)
        return self.put_file(dst, source)

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {key} not found", key=key) from exc
        except OSError as exc:
            raise _storage_error(exc, key) from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        fd = self._acquire(key)
        try:
            return os.pread(fd, length, offset)
        except OSError as exc:
            raise _storage_error(exc, key) from exc
        finally:
            self._release(fd)

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """One ``pread`` per range into a ``bytes`` of its own (the only copy: slicing one
        large read would copy every byte twice, and a 16 MiB buffer costs its page faults on
        every read). The kernel is first told to read the whole span ahead, so that a cold
        read still goes to disk in large requests."""
        if not ranges:
            return []
        fd = self._acquire(key)
        try:
            start = ranges[0][0]
            end = ranges[-1][0] + ranges[-1][1]
            if len(ranges) > 1 and end - start >= _ADVISE_MIN:
                os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_WILLNEED)
            return [os.pread(fd, length, offset) for offset, length in ranges]
        except OSError as exc:
            raise _storage_error(exc, key) from exc
        finally:
            self._release(fd)

    # Read descriptors: readers of a pack (the mount, streaming) call get_range once per blob,
    # and an open+close per call costs more than the read. A small LRU keeps them open; each is
    # reference-counted so that eviction never closes one a pread is still using. Objects are
    # immutable, and put/delete evict their key.
    def _acquire(self, key: str) -> int:
        with self._fds_lock:
            fd = self._fds.get(key)
            if fd is not None:
                self._fds.move_to_end(key)
                self._users[fd] += 1
                return fd
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {key} not found", key=key) from exc
        except OSError as exc:
            raise _storage_error(exc, key) from exc
        with self._fds_lock:
            self._users[fd] = 1
            if key not in self._fds:
                self._fds[key] = fd
                self._users[fd] += 1  # the cache's own reference
                if len(self._fds) > _OPEN_READERS:
                    self._drop(self._fds.popitem(last=False)[1])
        return fd

    def _release(self, fd: int) -> None:
        with self._fds_lock:
            self._drop(fd)

    def _drop(self, fd: int) -> None:
        """Drop one reference (lock held); close when none is left."""
        self._users[fd] -= 1
        if self._users[fd] == 0:
            del self._users[fd]
            os.close(fd)

    def _forget_reader(self, key: str) -> None:
        with self._fds_lock:
            fd = self._fds.pop(key, None)
            if fd is not None:
                self._drop(fd)

    def close(self) -> None:
        """Close the cached read descriptors (those in use close when their read ends)."""
        with self._fds_lock:
            while self._fds:
                self._drop(self._fds.popitem()[1])

    def size(self, key: str) -> int:
        try:
            return os.stat(self._path(key)).st_size
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {key} not found", key=key) from exc
        except OSError as exc:
            raise _storage_error(exc, key) from exc

    def delete(self, key: str) -> None:
        self._forget_reader(key)
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _storage_error(exc, key) from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the folder the prefix names (``packs/`` walks packs, not manifests).
        top = os.path.join(self.root, *prefix.split("/")[:-1])
        for folder, _dirs, files in os.walk(top):
            rel = os.path.relpath(folder, self.root)
            for name in files:
                if name.endswith(_TMP_SUFFIX):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted while listing
                    st = os.stat(os.path.join(folder, name))
                    yield ObjectInfo(key, st.st_size, st.st_mtime)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Written to a temporary file, then hard-linked to its name: ``link`` fails if the
        name exists, atomically, also on NFS."""
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}"
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            _fsync_dir(os.path.dirname(path))
            return True
        except OSError as exc:
            raise _storage_error(exc, key) from exc
        finally:
            _remove_quietly(tmp)

    def local_path(self, key: str) -> str | None:
        return self._path(key)

    def clean_partial(self, older_than: float = 3600.0) -> int:
        cutoff = time.time() - older_than
        removed = 0
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    if name.endswith(_TMP_SUFFIX) and os.lstat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
        return removed


def _write_all(fd: int, views: list[memoryview]) -> int:
    """writev every view (at most IOV_MAX per call, resuming after partial writes)."""
    total = i = 0
    while i < len(views):
        written = os.writev(fd, views[i : i + _IOV_MAX])
        total += written
        while i < len(views) and written >= len(views[i]):
            written -= len(views[i])
            i += 1
        if written:
            views[i] = views[i][written:]
    return total


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
