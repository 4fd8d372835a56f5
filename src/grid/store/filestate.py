"""What this machine already stored: absolute path + (size, mtime_ns, inode, ctime_ns) -> the
file's blob ids, so that a re-run skips reading and hashing files that did not change.

The assumption (git's, restic's, rsync's): a file whose size, mtime, inode and ctime are all
unchanged has unchanged content. Writing a file moves its mtime and ctime; restoring an old mtime
with ``touch -d`` still moves ctime, so only a tool that forges ctime (or a filesystem that
lies about it) can defeat it; ``--rehash`` reads everything again. Files modified within
``RACY_NS`` of the scan are not remembered (their timestamp may not yet show a write in
progress), so they are re-read next time.

Wrong or stale entries cannot produce a wrong version: a remembered blob is used only if the
blob index still has it, otherwise the file is read again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from grid.errors import StorageError
from grid.store.sqlite_file import PerThreadSQLite

RACY_NS = 2_000_000_000
DIGEST = 32
_MAX_PARAMS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digests BLOB NOT NULL
) WITHOUT ROWID;
"""

Key = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns


class FileState:
    """The state file (SQLite, WAL: several processes may use it); one connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        # synchronous=OFF: a lost update only costs a re-read
        self._db = PerThreadSQLite(path, "file state", synchronous="OFF")
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._db.get()

    def lookup_many(self, files: dict[str, Key]) -> dict[str, list[bytes]]:
        """Blob ids of each of ``files`` (path -> key) remembered under exactly that key."""
        found: dict[str, list[bytes]] = {}
        paths = list(files)
        conn = self._conn()
        try:
            for i in range(0, len(paths), _MAX_PARAMS):
                part = paths[i : i + _MAX_PARAMS]
                rows = conn.execute(
                    "SELECT path, size, mtime_ns, ino, ctime_ns, digests FROM files"
                    f" WHERE path IN ({','.join('?' * len(part))})",
                    part,
                )
                for path, size, mtime_ns, ino, ctime_ns, digests in rows:
                    if files[path] == (size, mtime_ns, ino, ctime_ns):
                        found[path] = [
                            digests[j : j + DIGEST] for j in range(0, len(digests), DIGEST)
                        ]
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the file state {self.path}: {exc}") from exc
        return found

    def remember(self, rows: Iterable[tuple[str, Key, list[bytes]]]) -> None:
        """Record files just stored: (path, key, blob ids in file order)."""
        conn = self._conn()
        try:
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                    ((path, *key, b"".join(digests)) for path, key, digests in rows),
                )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot update the file state {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()
