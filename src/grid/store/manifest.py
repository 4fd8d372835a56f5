"""Manifests: one self-contained SQLite file per version mapping every path to its blobs.

Rows are written in walk (= storage) order without indexes; ``finish`` builds the (parent, name)
index, so a lookup or a directory listing reads a few pages, never the whole manifest.
Layout and invariants: docs/format.md, "Manifest".
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from grid.errors import (
    FormatVersionError,
    IntegrityError,
    NoSpaceError,
    PathNotFoundError,
    SourceError,
    StorageError,
)

FORMAT_VERSION = "2.0"
FORMAT_MAJOR = 2

DIR, FILE, SYMLINK = 0, 1, 2
KIND_NAMES = {DIR: "dir", FILE: "file", SYMLINK: "symlink"}
ROOT_ID = 0
_MAX_LINK_HOPS = 40

BLOB = struct.Struct("<I32sIIIB")  # pack number, digest, offset, stored length, raw length, codec

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packs (no INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    target TEXT,
    blobs BLOB
);
"""


class BlobLocation(NamedTuple):
    """One blob of a file, as the manifest records it."""

    pack_id: str
    digest: bytes
    offset: int
    stored_length: int
    raw_length: int
    codec: int


@dataclass(frozen=True)
class Entry:
    """A path in a version: a directory, a regular file or a symlink."""

    id: int
    path: str
    kind: int
    size: int
    mode: int
    mtime_ns: int
    target: str | None
    blobs: bytes | None

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class ManifestWriter:
    """Builds a manifest file; not thread-safe (one writer, the ingest consumer)."""

    _FLUSH_ROWS = 2000

    def __init__(self, path: str, base_packs: Mapping[int, str] | None = None) -> None:
        """``base_packs``: the ``packs`` table of the manifest this one will be stored as a
        delta against; its packs keep their numbers here, so the blob lists of unchanged files
        are the same bytes (only the packs used are listed, as they are first used)."""
        self.path = path
        try:
            if os.path.exists(path):
                os.unlink(path)
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot create the manifest {path}: {exc}", key=path) from exc
        self._rows: list[tuple[object, ...]] = []
        self._next_id = ROOT_ID + 1
        base = base_packs or {}
        self._pack_numbers: dict[str, int] = {name: no for no, name in base.items()}
        self._pack_names: dict[int, str] = dict(base)
        self._listed: set[int] = set()
        self._next_pack = max(base, default=-1) + 1
        self._copied = False

    @classmethod
    def copy_of(cls, source: str, path: str) -> ManifestWriter:
        """A writer at ``path`` holding a copy of the finished manifest ``source``: entries,
        packs and lookup index as they are (an unchanged tree); ``finish`` replaces only its
        metadata. Nothing may be added to it."""
        try:
            shutil.copyfile(source, path)
        except OSError as exc:
            raise StorageError(f"cannot create the manifest {path}: {exc}", key=path) from exc
        writer = cls.__new__(cls)
        writer.path = path
        writer._rows, writer._copied = [], True
        try:
            writer._db = sqlite3.connect(path, check_same_thread=False)
            writer._db.execute("PRAGMA journal_mode=OFF")
            writer._db.execute("PRAGMA synchronous=OFF")
            packs = writer._db.execute("SELECT no, name FROM packs ORDER BY no").fetchall()
            last = writer._db.execute("SELECT MAX(id) FROM entries").fetchone()[0]
        except sqlite3.Error as exc:
            writer.abort()
            raise StorageError(f"cannot copy the manifest {source}: {exc}", key=path) from exc
        writer._next_id = (last or ROOT_ID) + 1
        writer._pack_numbers = {name: no for no, name in packs}
        writer._pack_names = dict(packs)
        writer._listed = set(writer._pack_names)
        writer._next_pack = max(writer._pack_names, default=-1) + 1
        return writer

    def pack_number(self, pack_id: str) -> int:
        """Return the manifest-local number of a pack, registering it on first use."""
        no = self._pack_numbers.get(pack_id)
        if no is None:
            self._refuse_copied()
            no = self._pack_numbers[pack_id] = self._next_pack
            self._next_pack += 1
            self._pack_names[no] = pack_id
        if no not in self._listed:
            self._listed.add(no)
            self._db.execute("INSERT INTO packs VALUES (?, ?)", (no, pack_id))
        return no

    def pack_id(self, number: int) -> str:
        """The pack registered under ``number``."""
        return self._pack_names[number]

    def add(
        self,
        parent: int,
        name: str,
        kind: int,
        size: int,
        mode: int,
        mtime_ns: int,
        target: str | None = None,
        blobs: bytes | None = None,
    ) -> int:
        """Append an entry under directory id ``parent`` and return its id."""
        self._refuse_copied()
        entry_id = self._next_id
        self._next_id += 1
        self._rows.append((entry_id, parent, name, kind, size, mode, mtime_ns, target, blobs))
        if len(self._rows) >= self._FLUSH_ROWS:
            self._flush()
        return entry_id

    def _refuse_copied(self) -> None:
        if self._copied:
            raise RuntimeError("a copied manifest (ManifestWriter.copy_of) takes no new entries")

    @property
    def pack_ids(self) -> list[str]:
        """Every pack the manifest references so far."""
        return [self._pack_names[no] for no in sorted(self._listed)]

    def _flush(self) -> None:
        try:
            self._db.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._rows
            )
        except UnicodeEncodeError as exc:
            raise SourceError(
                f"a file name is not valid UTF-8 ({exc.object!r}); rename it and retry"
            ) from exc
        except sqlite3.Error as exc:
            raise _write_error(exc, self.path) from exc
        self._rows.clear()

    def finish(self, meta: dict[str, str]) -> None:
        """Write metadata, build the lookup index and close the file."""
        self._flush()
        try:
            if self._copied:
                self._db.execute("DELETE FROM meta")
            self._db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("format_version", FORMAT_VERSION), *sorted(meta.items())],
            )
            if not self._copied:
                self._db.execute("CREATE UNIQUE INDEX entries_by_parent ON entries (parent, name)")
            self._db.commit()
        except sqlite3.Error as exc:
            raise _write_error(exc, self.path) from exc
        self._db.close()

    def stage(self) -> None:
        """Write pending rows and close, with no metadata and no index: a staged manifest,
        which ``grid.store.arrange`` turns into a finished one."""
        self._flush()
        try:
            self._db.commit()
        except sqlite3.Error as exc:
            raise _write_error(exc, self.path) from exc
        self._db.close()

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._db.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def _write_error(exc: sqlite3.Error, path: str) -> StorageError:
    if "full" in str(exc):
        return NoSpaceError(f"no space left to write the manifest {path}: {exc}", key=path)
    return StorageError(f"cannot write the manifest {path}: {exc}", key=path)


def path_of(db: sqlite3.Connection, entry_id: int) -> str:
    """The full path of entry ``entry_id`` of the manifest (finished or not) open as ``db``,
    walking up its parents.

    Raises:
        IntegrityError: the parents loop, or a name is not text.
    """
    parts: list[str] = []
    seen = set()
    while entry_id != ROOT_ID:
        row = db.execute("SELECT parent, name FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            break
        if entry_id in seen or not isinstance(row[1], str):
            raise IntegrityError(f"damaged manifest: entry {entry_id} has a bad parent or name")
        seen.add(entry_id)
        entry_id = row[0]
        parts.append(row[1])
    return "/".join(reversed(parts))


def encode_blobs(locations: list[tuple[int, bytes, int, int, int, int]]) -> bytes:
    """Pack (pack number, digest, offset, stored, raw, codec) tuples into the ``blobs`` column."""
    return b"".join(BLOB.pack(*loc) for loc in locations)


_COLUMNS = "id, parent, name, kind, size, mode, mtime_ns, target, blobs"


class _Cursor(sqlite3.Cursor):
    """A cursor whose read errors (a damaged file) are IntegrityErrors."""

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise IntegrityError(f"manifest is damaged or unreadable: {exc}") from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise IntegrityError(f"manifest is damaged or unreadable: {exc}") from exc

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # in batches: fast
        try:
            while batch := self.fetchmany(256):
                yield from batch
        except sqlite3.Error as exc:
            raise IntegrityError(f"manifest is damaged or unreadable: {exc}") from exc


class _Connection(sqlite3.Connection):
    """A read-only connection to a manifest whose queries run on ``_Cursor``."""

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self.cursor(_Cursor).execute(sql, parameters)


def _check_row(row: tuple[Any, ...]) -> None:
    """Refuse a row (from ``name`` on) whose values have the wrong types (a damaged or forged
    manifest), so that no caller meets a TypeError or KeyError later."""
    name, kind, size, mode, mtime_ns, target = row[:6]
    blobs = row[6] if len(row) > 6 else None
    if not (
        type(name) is str
        and type(kind) is int
        and kind in KIND_NAMES
        and type(size) is type(mode) is type(mtime_ns) is int
        and (target is None or type(target) is str)
        and (blobs is None or (type(blobs) is bytes and len(blobs) % BLOB.size == 0))
    ):
        raise IntegrityError(f"damaged manifest: entry {name!r:.80} has invalid fields")


class ManifestReader:
    """Read-only queries on a finished manifest file. Thread-safe (one connection per reader
    thread is not needed: sqlite3 serialises access on its own)."""

    def __init__(self, path: str, base_packs: Mapping[int, str] | None = None) -> None:
        """``base_packs``: the ``packs`` table of the manifest this one will be stored as a
        delta against; its packs keep their numbers here, so the blob lists of unchanged files
        are the same bytes (only the packs used are listed, as they are first used)."""
        self.path = path
        try:
            self._db = sqlite3.connect(
                f"file:{path}?mode=ro&immutable=1",
                uri=True,
                check_same_thread=False,
                factory=_Connection,
            )
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            self._packs = dict(self._db.execute("SELECT no, name FROM packs"))
        except sqlite3.Error as exc:
            raise IntegrityError(f"manifest {path} is damaged or unreadable: {exc}") from exc
        version = str(meta.get("format_version", ""))
        major = version.split(".")[0]
        if version and not (major.isascii() and major.isdecimal()):
            self.close()
            raise IntegrityError(f"manifest {path} has an invalid format version {version!r:.40}")
        if not version or int(major) > FORMAT_MAJOR:
            raise FormatVersionError(
                f"manifest format {version or '?'} is newer than this grid understands "
                f"({FORMAT_VERSION}); upgrade grid"
            )
        self.meta = meta

    def close(self) -> None:
        self._db.close()

    def _entry(self, row: tuple[Any, ...], path: str) -> Entry:
        _check_row(row[2:])
        return Entry(row[0], path, row[3], row[4], row[5], row[6], row[7], row[8])

    def _child_row(self, parent: int, name: str) -> Any:
        """The row of the entry called ``name`` in folder ``parent``, or None."""
        return self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE parent = ? AND name = ?", (parent, name)
        ).fetchone()

    def _resolve(self, path: str) -> tuple[int, tuple[object, ...] | None]:
        node, row = ROOT_ID, None
        for part in _parts(path):
            row = self._child_row(node, part)
            if row is None:
                raise PathNotFoundError(f"no such path in this version: {path}", path=path)
            node = row[0]
        return node, row

    def stat(self, path: str) -> Entry:
        """Return the entry at ``path`` ('' is the root directory).

        Raises:
            PathNotFoundError: no such path.
        """
        norm = "/".join(_parts(path))
        _node, row = self._resolve(norm)
        if row is None:
            mtime_ns = str(self.meta.get("mtime_ns", 0))
            if not mtime_ns.lstrip("-").isdecimal():
                raise IntegrityError(f"damaged manifest: root mtime {mtime_ns!r:.40}")
            return Entry(ROOT_ID, "", DIR, 0, 0o755 | 0o040000, int(mtime_ns), None, None)
        return self._entry(row, norm)

    def resolve(self, path: str, *, follow_last: bool = True) -> Entry:
        """Return the entry at ``path`` following symlinks on the way (and at the end if
        ``follow_last``), like the kernel would, but never out of the version's root.

        Raises:
            PathNotFoundError: missing path, a link out of the root, or a link loop.
        """
        todo = _parts(path)
        # the folders walked through, root first: each step is one (parent, name) lookup
        # from the last of them (a 21-level path: 21 lookups, not 231)
        done = [self.stat("")]
        hops = 0
        entry = done[0]
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(done) == 1:
                    raise PathNotFoundError(f"{path} leads outside the version", path=path)
                done.pop()
                entry = done[-1]
                continue
            here = done[-1]
            entry = self._step(here.id, f"{here.path}/{part}" if here.path else part)
            if entry.kind == SYMLINK and (todo or follow_last):
                hops += 1
                target = entry.target or ""
                if hops > _MAX_LINK_HOPS or target.startswith("/"):
                    raise PathNotFoundError(
                        f"{path}: link {entry.path} -> {target} leaves the version or loops",
                        path=path,
                    )
                todo = [*target.split("/"), *todo]
                todo = [p for p in todo if p not in ("", ".")]
                continue
            done.append(entry)
        return entry

    def _step(self, node: int, path: str) -> Entry:
        """The entry at ``path``, whose last component is a child of folder ``node``."""
        row = self._child_row(node, path.rsplit("/", 1)[-1])
        if row is None:
            raise PathNotFoundError(f"no such path in this version: {path}", path=path)
        return self._entry(row, path)

    def listdir(self, path: str = "") -> list[Entry]:
        """Return the entries directly inside directory ``path``, sorted by name."""
        entry = self.stat(path)
        if entry.kind != DIR:
            raise PathNotFoundError(f"not a directory: {path}", path=path)
        prefix = f"{entry.path}/" if entry.path else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE parent = ? ORDER BY name", (entry.id,)
        )
        return [self._entry(r, prefix + str(r[2])) for r in rows]

    def list_plain(self, path: str = "") -> list[tuple[str, int, int, int, int, str | None]]:
        """``listdir`` without the blob lists, as ``(path, kind, size, mode, mtime_ns,
        target)`` tuples: what a listing shows, at a fraction of the cost."""
        entry = self.stat(path)
        if entry.kind != DIR:
            raise PathNotFoundError(f"not a directory: {path}", path=path)
        prefix = f"{entry.path}/" if entry.path else ""
        rows = self._db.execute(
            "SELECT name, kind, size, mode, mtime_ns, target FROM entries WHERE parent = ? "
            "ORDER BY name",
            (entry.id,),
        )
        out = []
        for row in rows:
            _check_row(row)
            out.append((prefix + row[0], *row[1:]))
        return out

    # -- by id: what a filesystem needs (the kernel speaks inode numbers) -----------------------
    def entry(self, entry_id: int) -> Entry:
        """The entry with ``entry_id`` (ROOT_ID is the root); ``path`` holds only its name.

        Raises:
            PathNotFoundError: no such id.
        """
        if entry_id == ROOT_ID:
            return self.stat("")
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,)
        ).fetchone()
        if row is None:
            raise PathNotFoundError(f"no entry {entry_id}", path=str(entry_id))
        return self._entry(row, str(row[2]))

    def child(self, parent_id: int, name: str) -> Entry:
        """The entry called ``name`` in directory ``parent_id``.

        Raises:
            PathNotFoundError: no such name there.
        """
        row = self._child_row(parent_id, name)
        if row is None:
            raise PathNotFoundError(f"no {name!r} in directory {parent_id}", path=name)
        return self._entry(row, name)

    def children(self, parent_id: int, after: str = "", limit: int = 1000) -> list[Entry]:
        """Entries of directory ``parent_id`` named after ``after``, sorted, at most ``limit``."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE parent = ? AND name > ? ORDER BY name LIMIT ?",
            (parent_id, after, limit),
        )
        return [self._entry(r, str(r[2])) for r in rows]

    def child_rows(
        self, parent_id: int, after: str = "", limit: int = 1000
    ) -> list[tuple[Any, ...]]:
        """``children`` as bare rows (id, parent, name, kind, size, mode, mtime_ns, target,
        blobs), for a listing of many entries (the mount's READDIRPLUS). Unchecked: a damaged
        manifest can hold values of any type here, so use them only where a wrong type fails
        loudly, or turn a row into an entry with ``entry_of``, which checks it."""
        return self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE parent = ? AND name > ? ORDER BY name LIMIT ?",
            (parent_id, after, limit),
        ).fetchall()

    def entry_of(self, row: tuple[Any, ...]) -> Entry:
        """The entry of a row from ``child_rows`` (``path`` holds only its name), checked.

        Raises:
            IntegrityError: the row's values have the wrong types.
        """
        return self._entry(row, str(row[2]))

    def count_children(self, parent_id: int) -> int:
        """How many entries directory ``parent_id`` holds."""
        row = self._db.execute("SELECT COUNT(*) FROM entries WHERE parent = ?", (parent_id,))
        return int(row.fetchone()[0])

    def path_of(self, entry_id: int) -> str:
        """The full path of an entry (walks up its parents; for messages, not hot paths)."""
        return path_of(self._db, entry_id)

    def walk(self) -> Iterator[Entry]:
        """Yield every entry in storage order with its full path."""
        dirs: dict[int, str] = {ROOT_ID: ""}
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY id"):
            parent_path = dirs.get(row[1])
            if parent_path is None:
                raise IntegrityError(f"damaged manifest: entry {row[0]} has no parent folder")
            path = f"{parent_path}/{row[2]}" if parent_path else str(row[2])
            if row[3] == DIR:
                dirs[row[0]] = path
            yield self._entry(row, path)

    def blobs(self, entry: Entry) -> list[BlobLocation]:
        """Return the blobs of a file entry in order."""
        raw = entry.blobs or b""
        out = []
        for i in range(0, len(raw), BLOB.size):
            no, digest, offset, stored, rawlen, codec = BLOB.unpack_from(raw, i)
            pack = self._packs.get(no)
            if type(pack) is not str:
                raise IntegrityError(f"damaged manifest: {entry.path} names no pack {no}")
            out.append(BlobLocation(pack, digest, offset, stored, rawlen, codec))
        return out

    @property
    def pack_ids(self) -> list[str]:
        return list(self._packs.values())

    @property
    def pack_numbers(self) -> dict[int, str]:
        """The ``packs`` table: manifest-local number -> pack id."""
        return dict(self._packs)


_RELOCATE_PAGE = 10_000


def relocate_manifest(src: str, dst: str, moved: Mapping[tuple[str, int], tuple[str, int]]) -> None:
    """Write a copy of manifest ``src`` at ``dst`` in which every blob at (pack, offset) found
    in ``moved`` points at its new (pack, offset) instead (gc's repacking); packs no blob
    points into any more are dropped from its ``packs`` table. Only ``moved.get`` is used,
    so it may be a mapping kept on disk."""
    shutil.copyfile(src, dst)
    db = sqlite3.connect(dst)
    try:
        numbers = {name: no for no, name in db.execute("SELECT no, name FROM packs")}
        names = {no: name for name, no in numbers.items()}
        used: set[int] = set()
        last = -1
        while True:  # a page of entries at a time: memory stays flat at any number of files
            page = db.execute(
                "SELECT id, blobs FROM entries WHERE id > ? AND blobs IS NOT NULL ORDER BY id "
                "LIMIT ?",
                (last, _RELOCATE_PAGE),
            ).fetchall()
            if not page:
                break
            last = page[-1][0]
            updates = []
            for entry_id, raw in page:
                blobs = [BLOB.unpack_from(raw, i) for i in range(0, len(raw), BLOB.size)]
                changed = False
                for i, (no, digest, offset, stored, rawlen, codec) in enumerate(blobs):
                    target = moved.get((names[no], offset))
                    if target is not None:
                        new_no = numbers.get(target[0])
                        if new_no is None:
                            new_no = numbers[target[0]] = max(names, default=-1) + 1
                            names[new_no] = target[0]
                        blobs[i] = (new_no, digest, target[1], stored, rawlen, codec)
                        changed = True
                    used.add(blobs[i][0])
                if changed:
                    updates.append((b"".join(BLOB.pack(*b) for b in blobs), entry_id))
            db.executemany("UPDATE entries SET blobs = ? WHERE id = ?", updates)
        db.execute("DELETE FROM packs")
        db.executemany("INSERT INTO packs VALUES (?, ?)", [(n, names[n]) for n in sorted(used)])
        db.commit()
        db.execute("VACUUM")
    finally:
        db.close()


def _parts(path: str) -> list[str]:
    return [p for p in path.strip("/").split("/") if p and p != "."]
