"""Who is reading which version: shared file locks, one lock file per version.

Every reader of a version (a mount, ``open``, ``iter_files``, a download) holds a shared
``flock`` on ``<folder>/<name>@<number>.lock`` while it reads; a process holds one lock per
version however many readers it runs (counted). Deleting a version takes the exclusive lock
without waiting: if that fails, somebody is reading it. The kernel drops the locks of a
process that dies, so nothing goes stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

from grid.errors import storage_error


class ReaderLocks:
    """Shared (reading) and exclusive (deleting) locks on versions, by ``name:number``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._held: dict[str, tuple[int, int]] = {}  # ref -> (fd, holders in this process)
        self._lock = threading.Lock()

    def _path(self, ref: str) -> str:
        return os.path.join(self.folder, ref.replace(":", "@") + ".lock")

    def _open(self, ref: str) -> int:
        try:
            os.makedirs(self.folder, exist_ok=True)
            return os.open(self._path(ref), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise storage_error(exc, f"lock {ref} for reading in {self.folder}") from exc

    def hold(self, ref: str) -> None:
        """Start reading ``ref`` (waits while it is being deleted); pair with ``release``."""
        with self._lock:
            fd, count = self._held.get(ref, (-1, 0))
            if count == 0:
                fd = self._open(ref)
                fcntl.flock(fd, fcntl.LOCK_SH)
            self._held[ref] = (fd, count + 1)

    def release(self, ref: str) -> None:
        """Stop reading ``ref``."""
        with self._lock:
            fd, count = self._held.get(ref, (-1, 0))
            if count <= 1:
                self._held.pop(ref, None)
                if fd >= 0:
                    os.close(fd)  # drops the lock
            else:
                self._held[ref] = (fd, count - 1)

    @contextlib.contextmanager
    def reading(self, ref: str) -> Iterator[None]:
        """Hold ``ref`` for the ``with`` block."""
        self.hold(ref)
        try:
            yield
        finally:
            self.release(ref)

    @contextlib.contextmanager
    def deleting(self, ref: str) -> Iterator[bool]:
        """Try to lock ``ref`` exclusively without waiting; yields whether it got the lock
        (False: a reader has it). Readers that come meanwhile wait until the block ends."""
        with self._lock:
            mine = ref in self._held  # this process reads it
        if mine:
            yield False
            return
        fd = self._open(ref)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def close(self) -> None:
        """Drop every lock this process holds."""
        with self._lock:
            for fd, _ in self._held.values():
                os.close(fd)
            self._held.clear()
