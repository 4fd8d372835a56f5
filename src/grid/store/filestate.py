"""What this machine already stored: (folder, name) + (size, mtime_ns, inode, ctime_ns) -> where
the file's blobs are, so that a re-run skips reading and hashing files that did not change.

The assumption (git's, restic's, rsync's): a file whose size, mtime, inode and ctime are all
unchanged has unchanged content. Writing a file moves its mtime and ctime; restoring an old mtime
with ``touch -d`` still moves ctime, so only a tool that forges ctime (or a filesystem that
lies about it) can defeat it; ``--rehash`` reads everything again. Files modified within
``RACY_NS`` of the scan are not remembered (their timestamp may not yet show a write in
progress), so they are re-read next time.

Wrong or stale entries cannot produce a wrong version: remembered blobs are used only if their
pack is still indexed and stored whole (gc drops a pack from the index before deleting it), and
packs never change, otherwise the file is read again. Rows are keyed by (folder, name), so the
files of a folder are one range of the table: a window of listed files costs one range scan.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from grid.errors import StorageError, sqlite_error
from grid.store.sqlite_file import PerThreadSQLite

RACY_NS = 2_000_000_000
_SCHEMA_VERSION = 2  # the table is a cache: another layout is dropped and rebuilt
_REF = struct.Struct("<32s16sQIIB")  # digest, pack id, offset, stored, raw length, codec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    dir TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    blobs BLOB NOT NULL,
    PRIMARY KEY (dir, name)
) WITHOUT ROWID;
"""

Key = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns


class StoredBlob(NamedTuple):
    """Where one blob of a remembered file is stored."""

    digest: bytes
    pack_id: str
    offset: int
    stored_length: int
    raw_length: int
    codec: int


def encode_ref(
    digest: bytes, pack: bytes, offset: int, stored_length: int, raw_length: int, codec: int
) -> bytes:
    """One blob of a remembered file as the ``blobs`` column holds it (``pack``: the pack
    id's 16 bytes, ``bytes.fromhex`` of its name)."""
    return _REF.pack(digest, pack, offset, stored_length, raw_length, codec)


def digests(raw: bytes) -> bytes:
    """The blob ids of an encoded ``blobs`` value, concatenated in file order."""
    if len(raw) == _REF.size:
        return raw[:32]
    return b"".join(raw[i : i + 32] for i in range(0, len(raw), _REF.size))


def _decode(raw: bytes) -> list[StoredBlob]:
    out = []
    for i in range(0, len(raw), _REF.size):
        digest, pack, offset, stored, rawlen, codec = _REF.unpack_from(raw, i)
        out.append(StoredBlob(digest, pack.hex(), offset, stored, rawlen, codec))
    return out


class FileState:
    """The state file (SQLite, WAL: several processes may use it); one connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        # synchronous=OFF: a lost update only costs a re-read
        self._db = PerThreadSQLite(path, "file state", synchronous="OFF")
        conn = self._db.get()
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                conn.execute("DROP TABLE IF EXISTS files")
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"open the file state {path}") from exc

    def lookup(self, folder: str, files: dict[str, Key]) -> dict[str, list[StoredBlob]]:
        """Blob locations of each of ``files`` (name -> key) of ``folder`` remembered under
        exactly that key. One range scan from the first to the last name."""
        if not files:
            return {}
        found: dict[str, list[StoredBlob]] = {}
        try:
            rows = self._db.get().execute(
                "SELECT name, size, mtime_ns, ino, ctime_ns, blobs FROM files"
                " WHERE dir = ? AND name >= ? AND name <= ?",
                (folder, min(files), max(files)),
            )
            for name, size, mtime_ns, ino, ctime_ns, blobs in rows:
                if files.get(name) == (size, mtime_ns, ino, ctime_ns):
                    found[name] = _decode(blobs)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the file state {self.path}: {exc}") from exc
        return found

    def scan(self, folder: str) -> Iterator[tuple[str, int, int, int, int, bytes]]:
        """Every file remembered in ``folder``, sorted by name (the order of a walk's names):
        ``(name, size, mtime_ns, ino, ctime_ns, blobs)``, ``blobs`` encoded (see ``digests``).
        Read lazily: memory stays flat whatever the folder's size."""
        try:
            rows = self._db.get().execute(
                "SELECT name, size, mtime_ns, ino, ctime_ns, blobs FROM files WHERE dir = ?"
                " ORDER BY name",
                (folder,),
            )
            while batch := rows.fetchmany(512):
                yield from batch
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the file state {self.path}: {exc}") from exc

    def remember(self, rows: Iterable[tuple[str, str, Key, bytes]]) -> None:
        """Record files just stored: (folder, name, key, blobs in file order encoded with
        ``encode_ref``, one after another)."""
        try:
            with self._db.get() as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ((d, n, *key, blobs) for d, n, key, blobs in rows),
                )
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"update the file state {self.path}") from exc

    def close(self) -> None:
        self._db.close()
