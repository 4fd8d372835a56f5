"""The tree an archive's entries build, checked as they come: the limits on entry count and
total size, each path by the archive path rule, folders missing from the archive made before
their first child, link targets, and times clamped to what a manifest holds."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from grid.errors import ArchiveError
from grid.sources.archive_rules import (
    MAX_PATH_BYTES,
    MAX_TIME_NS,
    MIN_TIME_NS,
    ArchiveLimits,
    clean_path,
    escapes,
    shown,
    time_ns,
)
from grid.tree import SourceEntry, Warn

_DIR_MODE = stat.S_IFDIR | 0o755


class ArchiveTree:
    """The entries of one archive, in archive order, as ``SourceEntry`` items.

    ``hardlinks`` and ``dir_meta`` collect what ``grid.store.arrange`` settles once the whole
    tree is known.
    """

    def __init__(self, limits: ArchiveLimits, warn: Warn) -> None:
        self.limits, self.warn = limits, warn
        # path, target, mode, mtime_ns, and the path of the entry yielded last before it
        # (its target must come no later: tar could not extract a link to a later entry)
        self.hardlinks: list[tuple[str, str, int, int, str]] = []
        self.dir_meta: dict[str, tuple[int, int]] = {}  # explicit folders: mode, mtime_ns
        self._dirs: set[str] = {""}
        self._count = self._bytes = 0
        self._last: str | None = None  # the path of the entry yielded last
        self._clamped = False

    def admit(self, name: str, size: int) -> str:
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

    def mtime(self, seconds: float, path: str) -> int:
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

    def folder(self, path: str, mode: int, mtime_ns: int) -> Iterator[SourceEntry]:
        """A folder's own entry (recorded in ``dir_meta``), after missing parents."""
        if path in self.dir_meta:
            raise ArchiveError(f"the archive holds the folder {shown(path)} twice", path=path)
        self.dir_meta[path] = (stat.S_IFDIR | mode, mtime_ns)
        if path and path not in self._dirs:
            yield from self._parents(path, mtime_ns)
            self._dirs.add(path)
            up, name = os.path.split(path)
            self._last = path
            yield SourceEntry(up, name, stat.S_IFDIR | mode, 0, mtime_ns, None, path)

    def leaf(
        self, path: str, mode: int, size: int, mtime_ns: int, target: str | None = None
    ) -> Iterator[SourceEntry]:
        """A file or symlink entry, after missing parents."""
        if not path:
            raise ArchiveError("the archive has a file entry for its root folder", path=path)
        yield from self._parents(path, mtime_ns)
        up, name = os.path.split(path)
        self._last = path
        yield SourceEntry(up, name, mode, size, mtime_ns, target, path)

    def symlink(self, path: str, target: str, mtime_ns: int) -> Iterator[SourceEntry]:
        """A symlink entry; its target must be relative and at most 4096 bytes."""
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
        yield from self.leaf(path, stat.S_IFLNK | 0o777, size, mtime_ns, target)

    def hardlink(self, path: str, target: str, mode: int, mtime_ns: int) -> Iterator[SourceEntry]:
        """Record a hardlink in ``hardlinks`` (its target must be an earlier entry, checked by
        arrange); yield only its missing parents."""
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
