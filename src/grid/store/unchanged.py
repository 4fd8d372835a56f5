"""An unchanged re-run: a folder stored again with nothing changed since its previous version
gets a copy of that version's manifest (new metadata), with no file read, no row written and
nothing hashed.

Nothing changed means: the walk yields, in order, exactly the previous manifest's entries (name,
parent, kind, mode, mtime, size, link target), and every non-empty file is remembered by the
file state under its current (size, mtime, inode, ctime) with the blob ids the manifest gives
it, the rule by which ``grid.store.ingest`` skips reading a file. Then the ingest would write
the same rows (the same content, at locations the previous version's packs hold) and the same
tree digest. The packs are leased to the new version and checked to be indexed and stored whole
before the copy is used, as the ingest checks a remembered file's packs.

The walk, the manifest's rows and the file state's rows of each folder are three streams in the
same order, compared as they go (memory stays flat). At the first difference the comparison
stops and the ingest gets a source that yields what the walk would have yielded: the prefix
that matched, rebuilt from the manifest and the file state, the entry that differed, then the
rest of the same walk. A changed tree is walked once, as before.
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, BinaryIO

from grid.errors import IntegrityError, NotFoundError
from grid.store.filestate import FileState, digests
from grid.store.ingest import IngestStats
from grid.store.manifest import BLOB, DIR, FILE, FORMAT_MAJOR, ROOT_ID, SYMLINK
from grid.store.manifest_writer import ManifestWriter
from grid.store.pack import pack_key
from grid.tree import Source, SourceEntry

if TYPE_CHECKING:
    from grid.store.repository import Store

Locate = Callable[[str], str]  # a path of the tree -> its location (what the file state keys)
_REPORT_EVERY = 4096  # entries compared between progress reports
_ROW = "id, parent, name, kind, size, mode, mtime_ns, target, blobs"


@dataclass
class Reused:
    """The tree is the previous version's: its figures and the copied manifest (unfinished)."""

    stats: IngestStats
    manifest: ManifestWriter


def reuse_unchanged(
    source: Source,
    store: Store,
    previous: str,
    path: str,
    *,
    locate: Locate,
    holder: str | None = None,
    progress: Callable[[IngestStats], None] | None = None,
) -> Reused | Source:
    """Compare ``source`` (a local folder, walked as ``LocalSource`` walks it) with the finished
    manifest file ``previous``; if nothing changed, copy it to ``path`` (see the module
    docstring). Otherwise return the source to ingest instead of ``source``: it yields the same
    entries, and the walk is not repeated.

    ``locate`` gives a path's location, ``holder`` the version the packs are leased to; the
    file state is ``store.files``. ``progress`` is called now and then with the figures so far.
    """
    if store.files is None:
        return source
    try:
        db = sqlite3.connect(f"file:{previous}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return source
    try:
        comparison = _Comparison(source, store, store.files, db, previous, locate, holder)
        return comparison.run(path, progress)
    finally:
        db.close()


class _StateCursor:
    """The file state's rows of one folder, looked up by names given in sorted order."""

    def __init__(self, state: FileState, folder: str) -> None:
        self._rows = state.scan(folder)
        self._row: Any = next(self._rows, None)

    def get(self, name: str) -> Any:
        row = self._row
        while row is not None and row[0] < name:
            row = next(self._rows, None)
        self._row = row
        return row if row is not None and row[0] == name else None


class _Cursors:
    """A ``_StateCursor`` per folder of the walk; a depth-first walk never returns to a folder
    that is not above the current one, so only those are kept."""

    def __init__(self, state: FileState, locate: Locate) -> None:
        self._state, self._locate = state, locate
        self._open: dict[str, _StateCursor] = {}

    def get(self, folder: str, name: str) -> Any:
        cursor = self._open.get(folder)
        if cursor is None:
            for other in [f for f in self._open if not _above(f, folder)]:
                del self._open[other]
            cursor = self._open[folder] = _StateCursor(self._state, self._locate(folder))
        return cursor.get(name)


def _above(folder: str, inner: str) -> bool:
    return not folder or inner.startswith(f"{folder}/")


def _manifest_digests(blobs: bytes) -> bytes:
    if len(blobs) == BLOB.size:
        return blobs[4:36]
    return b"".join(blobs[i + 4 : i + 36] for i in range(0, len(blobs), BLOB.size))


class _Comparison:
    def __init__(
        self,
        source: Source,
        store: Store,
        state: FileState,
        db: sqlite3.Connection,
        previous: str,
        locate: Locate,
        holder: str | None,
    ) -> None:
        self.source, self.store, self.state, self.db = source, store, state, db
        self.previous, self.locate, self.holder = previous, locate, holder
        self.stats = IngestStats()
        self.dir_ids: dict[str, int] = {"": ROOT_ID}
        self.cursors = _Cursors(state, locate)

    def _rows(self) -> Iterator[tuple[Any, ...]]:
        rows = self.db.execute(f"SELECT {_ROW} FROM entries ORDER BY id")
        while batch := rows.fetchmany(1024):
            yield from batch

    def _meta(self) -> dict[str, str] | None:
        try:
            meta = dict(self.db.execute("SELECT key, value FROM meta"))
        except sqlite3.Error:
            return None
        major = str(meta.get("format_version", "")).split(".")[0]
        if not (major.isdecimal() and 1 <= int(major) <= FORMAT_MAJOR and meta.get("tree_digest")):
            return None  # 1.0 (no tree digest) or a newer major: ingest as usual
        return meta

    def run(self, path: str, progress: Callable[[IngestStats], None] | None) -> Reused | Source:
        meta = self._meta()
        if meta is None:
            return self.source
        walk = self.source.entries()
        try:
            rows = self._rows()
            matched = 0
            while True:
                try:
                    entry = next(walk, None)
                except Exception as exc:  # the ingest meets the same error at the same entry
                    return self._handover(matched, _raising(exc))
                if entry is None:
                    break
                row = next(rows, None)
                if row is None or not self._same(entry, row):
                    return self._handover(matched, chain([entry], walk))
                matched += 1
                if progress is not None and matched % _REPORT_EVERY == 0:
                    progress(self.stats)
            if next(rows, None) is not None or not self._packs_intact():
                return self._handover(matched, iter(()))
        except sqlite3.Error:
            return self._handover(0, self.source.entries())  # a damaged copy: walk again
        self.stats.tree_digest = meta["tree_digest"]
        manifest = ManifestWriter.copy_of(self.previous, path)
        if progress is not None:
            progress(self.stats)
        return Reused(self.stats, manifest)

    def _same(self, entry: SourceEntry, row: tuple[Any, ...]) -> bool:
        """Whether ``entry`` is what ``row`` records, and for a file, whether the file state
        vouches for its content; counts it in the figures."""
        entry_id, parent, name, kind, size, mode, mtime_ns, target, blobs = row
        if (
            name != entry.name
            or mode != entry.mode
            or mtime_ns != entry.mtime_ns
            or self.dir_ids.get(entry.parent) != parent
        ):
            return False
        stats = self.stats
        if stat.S_ISREG(mode):
            if kind != FILE or size != entry.size:
                return False
            if size:
                known = self.cursors.get(entry.parent, name) if entry.ino else None
                if (
                    known is None
                    or known[1:5] != (size, mtime_ns, entry.ino, entry.ctime_ns)
                    or not blobs
                    or digests(known[5]) != _manifest_digests(blobs)
                ):
                    return False
                stats.unchanged_files += 1
                stats.dedup_blobs += len(blobs) // BLOB.size
            elif blobs:
                return False
            stats.files += 1
            stats.bytes += size
        elif stat.S_ISDIR(mode):
            if kind != DIR:
                return False
            self.dir_ids[entry.path] = entry_id
            stats.dirs += 1
        elif stat.S_ISLNK(mode):
            if kind != SYMLINK or size != entry.size or target != entry.target:
                return False
            stats.symlinks += 1
        else:
            return False
        return True

    def _packs_intact(self) -> bool:
        """Lease the manifest's packs, then check each is indexed and stored at that size (a
        gc drops a pack from the index, checking leases, before deleting it)."""
        packs = [name for (name,) in self.db.execute("SELECT name FROM packs")]
        index = self.store.index
        if self.holder is not None:
            index.lease(self.holder, packs)
        sizes = index.pack_sizes(packs)
        for pack in packs:
            try:
                if (
                    sizes.get(pack) is None
                    or self.store.objects.size(pack_key(pack)) != sizes[pack]
                ):
                    return False
            except NotFoundError:
                return False
        return True

    def _handover(self, matched: int, rest: Iterator[SourceEntry]) -> Source:
        return _Continued(self.source, chain(self._replay(matched), rest))

    def _replay(self, count: int) -> Iterator[SourceEntry]:
        """The first ``count`` entries of the walk, which matched the manifest: rebuilt from it,
        with each file's inode and ctime from the file state (none if that changed since)."""
        if not count:
            return
        try:
            db = sqlite3.connect(f"file:{self.previous}?mode=ro&immutable=1", uri=True)
        except sqlite3.Error as exc:
            raise IntegrityError(f"manifest {self.previous} is unreadable: {exc}") from exc
        try:
            rows = db.execute(f"SELECT {_ROW} FROM entries ORDER BY id")
            cursors = _Cursors(self.state, self.locate)
            folders = {ROOT_ID: ""}
            for entry_id, parent, name, kind, size, mode, mtime_ns, target, _ in islice(
                rows, count
            ):
                folder = folders[parent]
                path = f"{folder}/{name}" if folder else name
                ino = ctime_ns = 0
                if kind == DIR:
                    folders[entry_id] = path
                elif kind == FILE and size:
                    known = cursors.get(folder, name)
                    if known is not None and known[1:3] == (size, mtime_ns):
                        ino, ctime_ns = known[3], known[4]
                yield SourceEntry(
                    folder, name, mode, size, mtime_ns, target, self.locate(path), ino, ctime_ns
                )
        except sqlite3.Error as exc:
            raise IntegrityError(f"manifest {self.previous} is damaged: {exc}") from exc
        finally:
            db.close()


def _raising(exc: Exception) -> Iterator[SourceEntry]:
    raise exc
    yield  # a generator: raises when the ingest reaches it


class _Continued:
    """``source`` whose walk is ``entries`` (the walk a comparison began, completed)."""

    def __init__(self, source: Source, entries: Iterator[SourceEntry]) -> None:
        self._source, self._entries = source, entries
        self.sequential, self.noun, self.workers = source.sequential, source.noun, source.workers

    def is_empty(self) -> bool:
        return self._source.is_empty()

    def entries(self) -> Iterator[SourceEntry]:
        return self._entries

    def cancel(self) -> None:
        self._source.cancel()

    def open(self, entry: SourceEntry) -> BinaryIO:
        return self._source.open(entry)

    def close(self) -> None:
        self._source.close()

    def root_mtime_ns(self) -> int:
        return self._source.root_mtime_ns()

    def recount(self) -> Source | None:
        return self._source.recount()
