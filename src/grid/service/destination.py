"""A download's destination folder, written only through names it controls.

Every path is opened one component at a time relative to its parent folder's descriptor,
without following symlinks (``O_NOFOLLOW``), so no link, one the version made earlier in the
same download or one already in DEST, can redirect a write outside DEST: a link in the way is
replaced, never followed. Files and links are made in a private temporary folder inside DEST
(a fresh random name, mode 0700, never a version's entry) and renamed into place. Errors name
DEST and the path, never GRID_HOME.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator

from grid.errors import (
    DestinationError,
    DestinationFullError,
    IntegrityError,
    StorageError,
)

_DIR_FDS = 64  # folder descriptors kept open (least recently used closed first)
TEMP_PREFIX = ".grid-download-"
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
IN_THE_WAY = (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)


def split_path(path: str) -> tuple[str, str]:
    """(parent folder, name) of a manifest path, refusing one that could leave DEST."""
    parts = path.split("/")
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise IntegrityError(f"manifest holds an unsafe path {path!r}")
    return "/".join(parts[:-1]), parts[-1]


def dest_error(exc: OSError, path: str, dest: str) -> StorageError:
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


def in_the_way(path: str, dest: str, there: str, wanted: str) -> StorageError:
    return DestinationError(
        f"cannot write {path} in the destination {dest}: {there} is there and the version has "
        f"{wanted}; move it away and retry",
        path=path,
    )


class Destination:
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
            raise dest_error(exc, path, path) from exc
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
                raise dest_error(exc, self.path, self.path) from exc
            self.temp_name = name
            try:
                self.temp = os.open(name, _OPEN_DIR, dir_fd=self.root)
            except OSError as exc:
                raise dest_error(exc, self.full(name), self.path) from exc
            return
        raise DestinationError(
            f"cannot make a temporary folder in the destination {self.path}", path=self.path
        )

    def __enter__(self) -> Destination:
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
        return dest_error(exc, self.full(rel), self.path)

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
                    raise in_the_way(self.full(rel), self.path, "a file", "a folder")
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
                if exc.errno in IN_THE_WAY:
                    raise in_the_way(self.full(rel), self.path, "a folder", kind) from exc
                raise self.error(exc, rel) from exc
