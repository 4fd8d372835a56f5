"""Queries on a finished manifest file (``grid.store.manifest``'s format): lookups by path
and by id, listings, the walk in storage order, and a file's blobs. A damaged or forged
manifest raises IntegrityError, never a TypeError or KeyError later."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from grid.errors import FormatVersionError, IntegrityError, PathNotFoundError
from grid.store.compression import PINNED
from grid.store.manifest import (
    BLOB,
    DIR,
    FILE,
    FORMAT_MAJOR,
    FORMAT_VERSION,
    KIND_NAMES,
    ROOT_ID,
    SYMLINK,
    BlobLocation,
    Entry,
    path_of,
)

_MAX_LINK_HOPS = 40

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

    def __init__(self, path: str) -> None:
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

    def blob_spans(self) -> Iterator[tuple[str, int, int]]:
        """(pack id, offset, stored length) of every stored blob every file uses, in storage
        order, repeats included (not the pieces of objects referenced where they are, which
        nothing stores); without building entries (what gc and storage accounting need)."""
        packs = self._packs
        for (raw,) in self._db.execute(f"SELECT blobs FROM entries WHERE kind = {FILE}"):
            if not raw:
                continue
            if len(raw) % BLOB.size:
                raise IntegrityError("damaged manifest: a file's blob list is cut short")
            for no, _digest, offset, stored, _raw, codec in BLOB.iter_unpack(raw):
                if codec == PINNED:  # an object referenced where it is: nothing stored
                    continue
                pack = packs.get(no)
                if type(pack) is not str:
                    raise IntegrityError(f"damaged manifest: a file names no pack {no}")
                yield pack, offset, stored

    @property
    def pack_ids(self) -> list[str]:
        return list(self._packs.values())

    @property
    def pack_numbers(self) -> dict[int, str]:
        """The ``packs`` table: manifest-local number -> pack id."""
        return dict(self._packs)


def _parts(path: str) -> list[str]:
    return [p for p in path.strip("/").split("/") if p and p != "."]
