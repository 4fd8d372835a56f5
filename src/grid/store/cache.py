"""A bounded on-disk cache of verified blobs, shared by every process that reads one storage.

Blobs are kept decoded, one file per blob named by its BLAKE3 id (``ab/abcd…``), written
to a temporary name and renamed, so a reader sees a whole blob or none. Only bytes that
matched their id are ever put here, so a hit is served without hashing again.

Sizes and last-use times live in a SQLite table (WAL, one writer at a time across processes);
triggers keep the running total exact whoever inserts or deletes. Each process batches its
inserts and touches and flushes them every ``_FLUSH_EVERY`` operations or second; when the total
passes the limit, the least recently used blobs are dropped until it is under 90 % of it. A
hit is decided by opening the blob's file, never by the table, so a blob evicted by another
process at the same moment is just a miss.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time

from grid.errors import StorageError, storage_error

_FLUSH_EVERY = 256
_FLUSH_SECONDS = 1.0
_LOW_WATER = 0.9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (digest BLOB PRIMARY KEY, size INTEGER NOT NULL,
                                  used REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_used ON blobs (used);
CREATE TABLE IF NOT EXISTS total (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO total VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS blobs_added AFTER INSERT ON blobs
  BEGIN UPDATE total SET bytes = bytes + NEW.size; END;
CREATE TRIGGER IF NOT EXISTS blobs_dropped AFTER DELETE ON blobs
  BEGIN UPDATE total SET bytes = bytes - OLD.size; END;
"""


class BlobCache:
    """Verified blobs on local disk, at most ``limit`` bytes (approximately: a batch may
    overshoot until it is flushed).

    Args:
        root: the cache folder (created if missing).
        limit: size bound in bytes; must be positive.

    Thread-safe; processes share the folder safely.
    """

    def __init__(self, root: str, limit: int) -> None:
        if limit <= 0:
            raise ValueError("cache limit must be positive")
        self.root = root
        self.limit = limit
        try:
            os.makedirs(root, exist_ok=True)
            self._db = sqlite3.connect(
                os.path.join(root, "cache.db"),
                timeout=60,
                isolation_level=None,
                check_same_thread=False,
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")  # the table is only accounting
            self._db.executescript(_SCHEMA)
        except OSError as exc:
            raise storage_error(exc, f"open the cache at {root}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the cache at {root}: {exc}") from exc
        self._added: dict[bytes, int] = {}
        self._touched: dict[bytes, float] = {}
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _path(self, digest: bytes) -> str:
        h = digest.hex()
        return os.path.join(self.root, h[:2], h)

    def get(self, digest: bytes, size: int) -> bytes | None:
        """The cached bytes of a blob of ``size`` bytes, or None (a miss)."""
        try:
            with open(self._path(digest), "rb", buffering=0) as f:
                data = f.read(size + 1)
        except OSError:
            data = None
        with self._lock:
            if data is None or len(data) != size:
                self.misses += 1
                return None
            self.hits += 1
            self._touched[digest] = time.time()
            self._maybe_flush()
        return data

    def put(self, digest: bytes, data: bytes) -> None:
        """Keep a blob that has been checked against ``digest``. Failures (disk full) are
        ignored: the cache is an optimisation, the reader already has its bytes."""
        path = self._path(digest)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        with self._lock:
            self._added[digest] = len(data)
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        pending = len(self._added) + len(self._touched)
        if pending >= _FLUSH_EVERY or (
            pending and time.monotonic() - self._last_flush >= _FLUSH_SECONDS
        ):
            self._flush()

    def flush(self) -> None:
        """Record this process's inserts and touches, then evict if over the limit."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        now = time.time()
        added, touched = self._added, self._touched
        self._added, self._touched = {}, {}
        self._last_flush = time.monotonic()
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO blobs VALUES (?, ?, ?) ON CONFLICT (digest) DO UPDATE "
                    "SET used = excluded.used",
                    [(d, n, now) for d, n in added.items()],
                )
                self._db.executemany(
                    "UPDATE blobs SET used = ? WHERE digest = ?",
                    [(t, d) for d, t in touched.items()],
                )
            self._evict()
        except sqlite3.Error:
            return  # accounting is best effort; the next flush tries again

    def _evict(self) -> None:
        if self._total() <= self.limit:
            return
        victims: list[bytes] = []
        with self._transaction():
            goal = self._total() - int(self.limit * _LOW_WATER)
            freed = 0
            rows = self._db.execute("SELECT digest, size FROM blobs ORDER BY used")
            for digest, size in rows:
                if freed >= goal:
                    break
                victims.append(digest)
                freed += size
            self._db.executemany("DELETE FROM blobs WHERE digest = ?", [(d,) for d in victims])
        for digest in victims:
            with contextlib.suppress(OSError):
                os.unlink(self._path(digest))

    @contextlib.contextmanager
    def _transaction(self):  # type: ignore[no-untyped-def]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _total(self) -> int:
        (total,) = self._db.execute("SELECT bytes FROM total").fetchone()
        return int(total)

    def size(self) -> int:
        """Bytes recorded in the cache (by every process, as of their last flush)."""
        with self._lock:
            return self._total()

    def close(self) -> None:
        with self._lock:
            self._flush()
            self._db.close()
