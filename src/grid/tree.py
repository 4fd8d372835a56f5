"""What a source yields and the store consumes: entries in path order, each directory before
its contents. Lives at the bottom so that sources and store, siblings, both depend on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

_NS_MIN, _NS_MAX = -(2**63), 2**63 - 1


@dataclass(slots=True)
class SourceEntry:
    """One path of the tree being imported.

    ``parent`` is the relative path of the containing directory ('' for the root), ``mode`` the
    full ``st_mode`` (type bits included), ``target`` the link text of a symlink, ``location``
    where the source finds it (an absolute path for a local folder); ``ino`` and ``ctime_ns``
    (0 when the source has none) let a re-run recognise an unchanged file.
    """

    parent: str
    name: str
    mode: int
    size: int
    mtime_ns: int
    target: str | None = None
    location: str = ""
    ino: int = 0
    ctime_ns: int = 0

    def __post_init__(self) -> None:
        # A file dated 2300 (or 1600) is stored, its time clamped to what a signed 64-bit
        # count of nanoseconds holds (years 1677 to 2262), as manifests record it.
        if not _NS_MIN <= self.mtime_ns <= _NS_MAX:
            self.mtime_ns = min(max(self.mtime_ns, _NS_MIN), _NS_MAX)
        if not _NS_MIN <= self.ctime_ns <= _NS_MAX:
            self.ctime_ns = min(max(self.ctime_ns, _NS_MIN), _NS_MAX)

    @property
    def path(self) -> str:
        return f"{self.parent}/{self.name}" if self.parent else self.name


class Source(Protocol):
    """A tree to import.

    ``sequential`` sources (an archive stream) can open a file only while it is the entry last
    yielded by ``entries``; others can open any listed file, from any thread. ``noun`` names
    the kind of tree in messages ("folder", "prefix", "archive"); ``workers`` is how many
    reads the source wants in flight (0: the store's default, for a source on local disk).
    """

    sequential: bool
    noun: str
    workers: int

    def is_empty(self) -> bool:
        """Whether there is nothing to store."""
        ...

    def entries(self) -> Iterator[SourceEntry]:
        """Yield every entry in path order, each directory before its contents."""
        ...

    def cancel(self) -> None:
        """Make a read blocked in another thread give up soon (the ingest is stopping)."""
        ...

    def open(self, entry: SourceEntry) -> BinaryIO:
        """Open a regular file's content for reading.

        Raises:
            FileNotFoundError: the file was deleted since it was listed (callers skip it).
            SourceError: any other failure, naming the path.
        """
        ...

    def close(self) -> None:
        """Release what the source holds (a download, spool files); safe to call twice."""
        ...

    def root_mtime_ns(self) -> int:
        """The root folder's modification time (0 where the source has none)."""
        ...

    def recount(self) -> Source | None:
        """A fresh source over the same tree, to count it in the background for an ETA, or
        None where listing twice costs too much (a stream, a remote listing)."""
        ...


class SourceDefaults:
    """What most sources do for the optional parts of ``Source``: inherit it."""

    noun = "folder"
    workers = 0

    def close(self) -> None:
        """Nothing to release."""

    def root_mtime_ns(self) -> int:
        return 0

    def recount(self) -> Source | None:
        return None


@runtime_checkable
class StreamedSource(Source, Protocol):
    """A source read as one stream (an archive): entries come in stream order, each file
    once, and the tree is put in path order after the ingest, from what the stream said of
    hard links (``hardlinks``: path, target, mode, mtime_ns, the entry before) and of folders
    (``dir_meta``: path -> (mode, mtime_ns)). ``downloaded`` and ``total`` (None: unknown)
    measure the stream; ``warn`` tells the user something about it."""

    hardlinks: list[tuple[str, str, int, int, str]]
    dir_meta: dict[str, tuple[int, int]]
    downloaded: int
    total: int | None
    warn: Callable[[str], None]


Warn = Callable[[str], None]
