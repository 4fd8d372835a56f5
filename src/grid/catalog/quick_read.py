"""Read an embedded (SQLite) catalog with the standard ``sqlite3`` module: no SQLAlchemy.

The CLI's read-only commands (``grid datastore list``, ``show``, ``ls``) start several times
faster this way. The answers and errors are those of ``Catalog``; whatever this module is not
sure of (no catalog yet, a schema to migrate, an owner not recorded, an unexpected value) makes
``open_quick`` return None, and the caller takes the normal path, which creates or migrates.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from grid.errors import DatastoreNotFoundError, VersionNotFoundError
from grid.records import DatastoreInfo, VersionInfo

# Catalog.HEAD_REVISION (tests/test_startup.py keeps them equal): another schema is not read.
HEAD_REVISION = "0010"
_BUSY_MS = 60000  # as the engine's busy_timeout
VERSION_COLUMNS = (
    "number, status, reason, source, files, size, stored_bytes, created_at, finished_at, "
    "manifest_id, progress_done, progress_total, host, pid, lease_expires_at"
)


class Unsure(Exception):
    """Something this reader does not know how to read: take the normal path."""


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Unsure(f"unexpected time {value!r}")
    try:
        t = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Unsure(str(exc)) from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def version_record(name: str, row: tuple[Any, ...]) -> VersionInfo:
    (number, status, reason, source, files, size, stored, created, finished) = row[:9]
    (manifest_id, done, total, host, pid, lease) = row[9:]
    return VersionInfo(
        datastore=name,
        number=number,
        status=status,
        reason=reason,
        source=source,
        files=files,
        size=size,
        stored_bytes=stored,
        created_at=_time(created),  # type: ignore[arg-type]
        finished_at=_time(finished),
        manifest_id=manifest_id,
        progress_done=done,
        progress_total=total,
        host=host,
        pid=pid,
        lease_expires_at=_time(lease),
    )


class QuickCatalog:
    """The datastores and versions of ``owner`` in the SQLite catalog file at ``path``, read
    (``grid.catalog.quick_write`` writes); each call reads one consistent snapshot.
    Thread-safe (one call at a time)."""

    def __init__(self, conn: sqlite3.Connection, owner_id: int) -> None:
        self._conn = conn
        self.owner_id = owner_id
        self._lock = threading.RLock()
        self._closed = False

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction on the shared connection, while no other thread uses it."""
        with self._lock:
            if self._closed:  # by another thread: its catalog answers now
                raise Unsure("closed")
            with self._conn:
                self._conn.execute("BEGIN")
                yield

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    def _read(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise Unsure(str(exc)) from exc

    def _datastore_id(self, name: str) -> int:
        rows = self._read(
            "SELECT id, deleted_at FROM datastores WHERE owner_id = ? AND name = ?",
            self.owner_id,
            name,
        )
        if not rows or rows[0][1] is not None:
            raise DatastoreNotFoundError(f"no datastore named {name!r}", datastore=name)
        return int(rows[0][0])

    def datastores(self) -> list[DatastoreInfo]:
        """Every datastore of the owner with its version count and latest version, by name."""
        out = []
        with self._snapshot():  # one snapshot for all the reads
            for ds_id, name, created in self._read(
                "SELECT id, name, created_at FROM datastores WHERE owner_id = ? AND deleted_at "
                "IS NULL ORDER BY name",
                self.owner_id,
            ):
                count = self._read("SELECT count(*) FROM versions WHERE datastore_id = ?", ds_id)
                latest = self._read(
                    f"SELECT {VERSION_COLUMNS} FROM versions WHERE datastore_id = ? "
                    "ORDER BY number DESC LIMIT 1",
                    ds_id,
                )
                out.append(
                    DatastoreInfo(
                        name=name,
                        created_at=_time(created),  # type: ignore[arg-type]
                        versions=count[0][0] or 0,
                        latest=version_record(name, latest[0]) if latest else None,
                    )
                )
        return out

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of ``name``, oldest first."""
        with self._snapshot():
            ds_id = self._datastore_id(name)
            rows = self._read(
                f"SELECT {VERSION_COLUMNS} FROM versions WHERE datastore_id = ? ORDER BY number",
                ds_id,
            )
        return [version_record(name, row) for row in rows]

    def version(self, name: str, number: int) -> VersionInfo:
        """Version ``number`` of ``name``."""
        with self._snapshot():
            ds_id = self._datastore_id(name)
            rows = []
            if 1 <= number < 2**63:  # as Catalog: beyond SQLite's integers, no such version
                rows = self._read(
                    f"SELECT {VERSION_COLUMNS} FROM versions WHERE datastore_id = ? AND number = ?",
                    ds_id,
                    number,
                )
        if not rows:
            raise VersionNotFoundError(
                f"datastore {name!r} has no version {number}", datastore=name, version=number
            )
        return version_record(name, rows[0])


def open_quick(
    path: str, owner: str, kind: type[QuickCatalog] = QuickCatalog
) -> QuickCatalog | None:
    """The catalog at ``path`` for ``owner`` (as a ``kind``), or None when the normal path must
    open it: no file yet, a schema other than the current one, no such owner recorded, or any
    error."""
    if not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(
            f"file:{quote(path)}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error:
        return None
    try:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        head = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        owner_row = conn.execute("SELECT id FROM owners WHERE name = ?", (owner,)).fetchall()
    except sqlite3.Error:
        conn.close()
        return None
    if head != [(HEAD_REVISION,)] or not owner_row:
        conn.close()
        return None
    try:
        return kind(conn, int(owner_row[0][0]))
    except (sqlite3.Error, Unsure):
        conn.close()
        return None
