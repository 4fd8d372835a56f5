"""The blob index: which blobs this store already holds, and where (blob id -> pack location).

A local SQLite file, safe for several processes (WAL). It is a cache of the pack trailers: a
pack's blobs are recorded only after the pack object is stored, so an indexed blob always
exists unless the pack was later damaged. Dedup is scoped to one store, i.e. one owner.

Leases: a create records every pack it writes or references under its version ("name:number")
before relying on it; gc never removes a leased pack of an unfinished version, and a resumed
create finds the packs its stopped attempt wrote but had not yet indexed.

Written: the key of every object this installation stores (packs and manifests) is recorded
*before* the object is written, and dropped once gc has deleted it. gc deletes nothing else:
an object this installation cannot show it wrote is never garbage to it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from grid.errors import sqlite_error
from grid.store.pack import PackedBlob, parse_trailer
from grid.store.sqlite_file import PerThreadSQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS packs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    digest BLOB PRIMARY KEY,
    pack INTEGER NOT NULL REFERENCES packs(id),
    offset INTEGER NOT NULL,
    stored_length INTEGER NOT NULL,
    raw_length INTEGER NOT NULL,
    codec INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retired (key TEXT PRIMARY KEY, refs TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    holder TEXT NOT NULL,
    pack TEXT NOT NULL,
    PRIMARY KEY (holder, pack)
) WITHOUT ROWID;
"""
# Added in format 1.2; an index made before it is seeded with the packs it knows.
_WRITTEN = (
    "CREATE TABLE written (key TEXT PRIMARY KEY) WITHOUT ROWID",
    "INSERT OR IGNORE INTO written"
    " SELECT 'packs/' || substr(name, 1, 2) || '/' || name FROM packs"
    " UNION SELECT 'packs/' || substr(pack, 1, 2) || '/' || pack FROM leases",
)


_MAX_PARAMS = 500


class BlobRef(NamedTuple):
    """A stored blob: its pack and position."""

    pack_id: str
    offset: int
    stored_length: int
    raw_length: int
    codec: int
    pack_size: int


class BlobIndex:
    """Lookups and inserts on the index file; one SQLite connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = PerThreadSQLite(path, "blob index")
        with self._conn() as conn:
            conn.executescript(_SCHEMA)
        self._add_written()

    def _add_written(self) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'written'"
            ).fetchone():
                for statement in _WRITTEN:
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        return self._db.get()

    def _write_many(self, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
        """``sql`` for each of ``rows``, in one transaction."""
        conn = self._conn()
        try:
            with conn:
                conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"update blob index {self.path}") from exc

    def _select_in(self, sql: str, values: list[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql``, whose ``(?)`` is filled with ``values``, a bounded part at a time."""
        conn = self._conn()
        for i in range(0, len(values), _MAX_PARAMS):
            part = values[i : i + _MAX_PARAMS]
            yield from conn.execute(sql.replace("(?)", f"({','.join('?' * len(part))})"), part)

    def lookup_many(self, digests: list[bytes]) -> dict[bytes, BlobRef]:
        """Return the stored location of each of ``digests`` that is in the index."""
        rows = self._select_in(
            "SELECT b.digest, p.name, b.offset, b.stored_length, b.raw_length, b.codec, p.size"
            " FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.digest IN (?)",
            digests,
        )
        return {row[0]: BlobRef(*row[1:]) for row in rows}

    def add_pack(self, pack_id: str, size: int, blobs: Iterable[PackedBlob]) -> None:
        """Record a stored pack and its blobs (blobs already indexed keep their first location)."""
        conn = self._conn()
        try:
            with conn:
                cur = conn.execute("INSERT INTO packs (name, size) VALUES (?, ?)", (pack_id, size))
                pid = cur.lastrowid
                conn.executemany(
                    "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        (b.digest, pid, b.offset, b.stored_length, b.raw_length, b.codec)
                        for b in blobs
                    ),
                )
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"update blob index {self.path}") from exc

    def learn_packs(self, packs: list[tuple[str, int, bytes]]) -> None:
        """Index stored packs from ``(pack_id, size, trailer)``, as another machine or a
        team-mode server reports them; packs indexed already stay as they are."""
        have = self.has_packs([pack_id for pack_id, _, _ in packs])
        for pack_id, size, trailer in packs:
            if pack_id not in have:
                self.add_pack(pack_id, size, parse_trailer(trailer))

    def forget_pack(self, pack_id: str) -> None:
        """Drop a pack and its blobs (it was found missing or damaged)."""
        conn = self._conn()
        try:
            with conn:
                row = conn.execute("SELECT id FROM packs WHERE name = ?", (pack_id,)).fetchone()
                if row:
                    _drop_pack(conn, row[0])
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"update blob index {self.path}") from exc

    def forget_blobs(self, digests: list[bytes]) -> None:
        """Drop blobs found damaged, with the packs that hold them: a later create stores
        them again. The whole pack goes because a pack with one damaged blob is suspect, and
        because what a re-run trusts without reading (the file state, an unchanged tree) is
        checked pack by pack: a pack still indexed would hand the damage on."""
        conn = self._conn()
        try:
            with conn:
                packs = set()
                for digest in digests:
                    for (pack,) in conn.execute(
                        "SELECT pack FROM blobs WHERE digest = ?", (digest,)
                    ):
                        packs.add(pack)
                    conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
                for pack in packs:
                    _drop_pack(conn, pack)
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"update blob index {self.path}") from exc

    def has_packs(self, pack_ids: list[str]) -> set[str]:
        """Which of ``pack_ids`` are indexed."""
        return set(self.pack_sizes(pack_ids))

    def pack_sizes(self, pack_ids: list[str]) -> dict[str, int]:
        """Indexed size of each of ``pack_ids`` that is indexed."""
        return dict(self._select_in("SELECT name, size FROM packs WHERE name IN (?)", pack_ids))

    def lease(self, holder: str, pack_ids: Iterable[str]) -> None:
        """Record that ``holder`` (a version being created) uses these packs."""
        self._write_many(
            "INSERT OR IGNORE INTO leases VALUES (?, ?)", ((holder, p) for p in pack_ids)
        )

    def leased(self, holder: str | None = None) -> list[tuple[str, str]]:
        """(holder, pack) leases, of one holder or of all."""
        conn = self._conn()
        if holder is None:
            return list(conn.execute("SELECT holder, pack FROM leases"))
        return list(conn.execute("SELECT holder, pack FROM leases WHERE holder = ?", (holder,)))

    def forget_unleased(self, pack_ids: list[str]) -> list[str]:
        """In one transaction, drop from the index every pack of ``pack_ids`` that nobody
        leases; return those (the caller then deletes their objects)."""
        conn = self._conn()
        out = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for pack_id in pack_ids:
                    if conn.execute(
                        "SELECT 1 FROM leases WHERE pack = ? LIMIT 1", (pack_id,)
                    ).fetchone():
                        continue
                    row = conn.execute("SELECT id FROM packs WHERE name = ?", (pack_id,)).fetchone()
                    if row:
                        _drop_pack(conn, row[0])
                    out.append(pack_id)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"update blob index {self.path}") from exc
        return out

    def will_write(self, keys: Iterable[str]) -> None:
        """Record that this installation is about to store objects ``keys`` (see the module
        docstring); call before the write."""
        self._write_many("INSERT OR IGNORE INTO written VALUES (?)", ((k,) for k in keys))

    def wrote(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` this installation recorded writing."""
        return {k for (k,) in self._select_in("SELECT key FROM written WHERE key IN (?)", keys)}

    def deleted(self, keys: Iterable[str]) -> None:
        """Forget objects gc has deleted."""
        self._write_many("DELETE FROM written WHERE key = ?", ((k,) for k in keys))

    def retire(self, objects: list[tuple[str, list[str]]]) -> None:
        """Record objects gc replaced (a repacked pack, a rewritten manifest) with the versions
        whose readers may still need them; ``retired`` lists them until ``unretire``."""
        self._write_many(
            "INSERT OR REPLACE INTO retired VALUES (?, ?)",
            ((key, " ".join(refs)) for key, refs in objects),
        )

    def retired(self) -> list[tuple[str, list[str]]]:
        """(key, version refs) of every retired object not yet deleted."""
        rows = self._conn().execute("SELECT key, refs FROM retired")
        return [(key, refs.split()) for key, refs in rows]

    def unretire(self, keys: list[str]) -> None:
        """Forget retired objects once deleted."""
        self._write_many("DELETE FROM retired WHERE key = ?", ((k,) for k in keys))

    def release(self, holder: str) -> None:
        """Drop a holder's leases (its version succeeded, failed or was deleted)."""
        self._write_many("DELETE FROM leases WHERE holder = ?", [(holder,)])

    def close(self) -> None:
        """Close every thread's connection."""
        self._db.close()


def _drop_pack(conn: sqlite3.Connection, pack: int) -> None:
    """Delete a pack (by its row id) and its blobs from the index, in the caller's
    transaction."""
    conn.execute("DELETE FROM blobs WHERE pack = ?", (pack,))
    conn.execute("DELETE FROM packs WHERE id = ?", (pack,))
