"""A local folder (or single file) as a source: depth-first, names sorted, nothing read twice."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from grid.errors import SourceError, UsageError
from grid.tree import SourceDefaults, SourceEntry, Warn


class LocalSource(SourceDefaults):
    """Walk ``root``; a file as root becomes a one-file tree. Sockets, FIFOs and devices are
    skipped with a warning; symlinks are kept as links, never followed."""

    sequential = False

    def __init__(self, root: str, warn: Warn | None = None, exclude: tuple[str, ...] = ()) -> None:
        self.root = os.path.abspath(root)
        self.warn = warn or (lambda _msg: None)
        self.exclude = exclude
        # (device, inode) of folders never to enter, e.g. GRID_HOME inside the source
        self._excluded = {(st.st_dev, st.st_ino) for st in map(_stat_or_none, exclude) if st}
        try:
            st = os.stat(self.root)
        except FileNotFoundError as exc:
            raise UsageError(
                f"{root} does not exist", rule="SOURCE must be a folder or a file"
            ) from exc
        except OSError as exc:
            raise SourceError(f"cannot read {root}: {exc.strerror}", path=root) from exc
        self.is_dir = stat.S_ISDIR(st.st_mode)
        if not (self.is_dir or stat.S_ISREG(st.st_mode)):
            raise UsageError(
                f"{root} is neither a folder nor a regular file",
                rule="SOURCE must be a folder or a file",
            )
        self.root_stat = st

    def is_empty(self) -> bool:
        """Whether the source holds nothing to store."""
        if not self.is_dir:
            return False
        try:
            with os.scandir(self.root) as it:
                return next(it, None) is None
        except OSError as exc:
            raise SourceError(f"cannot list {self.root}: {exc.strerror}", path=self.root) from exc

    def cancel(self) -> None:
        """Nothing to do: reads of a local file or an object end on their own."""

    def root_mtime_ns(self) -> int:
        return self.root_stat.st_mtime_ns

    def recount(self) -> LocalSource:
        return LocalSource(self.root, exclude=self.exclude)

    def entries(self) -> Iterator[SourceEntry]:
        if not self.is_dir:
            st = self.root_stat
            name = os.path.basename(self.root)
            yield SourceEntry(
                "",
                name,
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
                None,
                self.root,
                st.st_ino,
                st.st_ctime_ns,
            )
            return
        yield from self._walk(self.root, "")

    def _walk(self, folder: str, rel: str) -> Iterator[SourceEntry]:
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise SourceError(f"cannot list {folder}: {exc.strerror}", path=folder) from exc
        for child in children:
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walk: not part of this version
            except OSError as exc:
                raise SourceError(
                    f"cannot stat {child.path}: {exc.strerror}", path=child.path
                ) from exc
            mode = st.st_mode
            if stat.S_ISREG(mode):
                yield SourceEntry(
                    rel,
                    child.name,
                    mode,
                    st.st_size,
                    st.st_mtime_ns,
                    None,
                    child.path,
                    st.st_ino,
                    st.st_ctime_ns,
                )
            elif stat.S_ISDIR(mode):
                if (st.st_dev, st.st_ino) in self._excluded:
                    self.warn(f"skipped {child.path}: grid's own storage")
                    continue
                yield SourceEntry(rel, child.name, mode, 0, st.st_mtime_ns, None, child.path)
                yield from self._walk(child.path, f"{rel}/{child.name}" if rel else child.name)
            elif stat.S_ISLNK(mode):
                target = os.readlink(child.path)
                yield SourceEntry(
                    rel,
                    child.name,
                    mode,
                    len(os.fsencode(target)),
                    st.st_mtime_ns,
                    target,
                    child.path,
                )
            else:
                self.warn(f"skipped {child.path}: not a regular file, folder or symlink")

    def location(self, path: str) -> str:
        """Where the walk finds ``path``, a path of the tree ('' is the root folder): what
        its entries' ``location`` is."""
        return os.path.join(self.root, path) if path else self.root

    def open(self, entry: SourceEntry) -> BinaryIO:
        try:
            return open(entry.location, "rb", buffering=0)
        except FileNotFoundError:
            raise  # deleted since it was listed: the caller skips it
        except OSError as exc:
            raise SourceError(
                f"cannot read {entry.location}: {exc.strerror}", path=entry.location
            ) from exc


def _stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None
