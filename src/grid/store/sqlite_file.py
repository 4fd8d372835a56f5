"""One SQLite file opened once per thread (sqlite3 connections must not be shared across
threads while in use), in WAL mode so that several processes can use it too."""

from __future__ import annotations

import os
import sqlite3
import threading

from grid.errors import StorageError


class PerThreadSQLite:
    """Connections to ``path``, one per calling thread, closed together.

    Args:
        path: the database file (its folder is created if missing).
        what: how errors name the file ("blob index", "file state").
        synchronous: SQLite's ``synchronous`` pragma (``NORMAL``; ``OFF`` where a lost update
            only costs work).
    """

    def __init__(self, path: str, what: str, synchronous: str = "NORMAL") -> None:
        self.path, self.what, self.synchronous = path, what, synchronous
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use).

        Raises:
            StorageError: the file cannot be opened.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
            except (OSError, sqlite3.Error) as exc:
                raise StorageError(f"cannot open the {self.what} {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
