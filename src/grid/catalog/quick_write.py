"""A create's catalog calls on an embedded (SQLite) catalog with ``sqlite3``: no SQLAlchemy.

An unchanged re-run of a folder is over in a few tenths of a second, and opening ``Catalog``
(importing SQLAlchemy, checking the schema) would cost about as much again. ``QuickWriter``
makes the same transactions (``BEGIN IMMEDIATE``, the same pragmas) and writes the same rows
and values as ``Catalog`` for the calls a create makes; it opens only a catalog at the current
migration head with the owner recorded (``open_quick``), and raises ``Unsure`` (nothing
written) where it does not know the answer, for the caller to ask ``Catalog`` instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from grid.catalog.quick_read import VERSION_COLUMNS, QuickCatalog, Unsure, version_record
from grid.errors import ConflictError, StorageError, VersionNotFoundError
from grid.records import FAILED, SUCCEEDED, UNFINISHED, UPLOADING, Lease, VersionInfo

Stopped = Callable[[VersionInfo], bool]
_ALLOCATE_TRIES = 20  # as Catalog's
_UNFINISHED = ", ".join(f"'{status}'" for status in UNFINISHED)


def _stored(t: datetime) -> str:
    """``t`` as SQLAlchemy stores a DateTime in SQLite (its UTC fields, no zone)."""
    return f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond:06d}"


class QuickWriter(QuickCatalog):
    """``QuickCatalog`` that also writes what a create writes (see ``Catalog`` for each call).

    Raises (each call): StorageError for a database error, as ``Catalog`` words it.
    ``clock`` (UTC) is read where ``Catalog`` reads its own.
    """

    def __init__(self, conn: sqlite3.Connection, owner_id: int) -> None:
        super().__init__(conn, owner_id)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        # The engine's per-connection settings (grid.catalog.engine); WAL is the file's own.
        if conn.execute("PRAGMA journal_mode").fetchone() != ("wal",):
            raise Unsure("not in WAL mode")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._id: str | None = None

    @contextmanager
    def _write(self, retry: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed at the end, rolled back on any error; with
        ``retry``, a broken constraint is raised as such (for another try)."""
        with self._lock:
            if self._closed:  # by another thread: its catalog answers now
                raise Unsure("closed")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.commit()
                except BaseException:
                    with suppress(sqlite3.Error):
                        conn.rollback()
                    raise
            except sqlite3.Error as exc:
                if retry and isinstance(exc, sqlite3.IntegrityError):
                    raise
                lines = str(exc).strip().splitlines()
                reason = lines[0] if lines else type(exc).__name__
                raise StorageError(f"catalog database error: {reason}") from exc

    def _now(self) -> str:
        return _stored(self.clock())

    def _hold(self, lease: Lease) -> tuple[str, int, str]:
        """The ``host, pid, lease_expires_at`` of a version ``lease`` holds (``Catalog._hold``)."""
        return lease.host, lease.pid, _stored(self.clock() + timedelta(seconds=lease.seconds))

    @property
    def catalog_id(self) -> str:
        """This catalog's id (the storage it writes is claimed by it)."""
        if self._id is None:
            with self._snapshot():
                rows = self._read("SELECT id FROM installation")
            if len(rows) != 1 or not isinstance(rows[0][0], str):
                raise Unsure(f"{len(rows)} installation rows")
            self._id = rows[0][0]
        return self._id

    def _version(self, conn: sqlite3.Connection, name: str, number: int) -> tuple[Any, ...]:
        """``(id, row...)`` of version ``name:number``; NotFoundError as ``Catalog`` raises."""
        ds_id = self._datastore_id(name)
        rows = []
        if 1 <= number < 2**63:
            rows = conn.execute(
                f"SELECT id, {VERSION_COLUMNS} FROM versions WHERE datastore_id = ? AND number = ?",
                (ds_id, number),
            ).fetchall()
        if not rows:
            raise VersionNotFoundError(
                f"datastore {name!r} has no version {number}", datastore=name, version=number
            )
        return tuple(rows[0])

    def new_version(self, name: str, source: str, manifest_id: str, lease: Lease) -> VersionInfo:
        """Create datastore ``name`` if needed and allocate its next version, status
        uploading, held by ``lease``."""
        for _ in range(_ALLOCATE_TRIES):
            try:
                with self._write(retry=True) as conn:
                    return self._allocate(conn, name, source, manifest_id, lease)
            except sqlite3.IntegrityError:
                continue
        raise StorageError(f"could not allocate a version number for {name!r}; try again")

    def _allocate(
        self, conn: sqlite3.Connection, name: str, source: str, manifest_id: str, lease: Lease
    ) -> VersionInfo:
        now = self._now()
        ds = conn.execute(
            "SELECT id, last_version, deleted_at FROM datastores WHERE owner_id = ? AND name = ?",
            (self.owner_id, name),
        ).fetchone()
        if ds is None:
            number = 1
            ds_id = conn.execute(
                "INSERT INTO datastores (owner_id, name, created_at, last_version, deleted_at) "
                "VALUES (?, ?, ?, ?, NULL)",
                (self.owner_id, name, now, number),
            ).lastrowid
        else:
            ds_id, number = ds[0], ds[1] + 1
            revive = ds[2] is not None
            conn.execute(
                "UPDATE datastores SET last_version = ?"
                + (", deleted_at = NULL, created_at = ?" if revive else "")
                + " WHERE id = ?",
                (number, now, ds_id) if revive else (number, ds_id),
            )
        conn.execute(
            "INSERT INTO versions (datastore_id, number, status, reason, source, manifest_id, "
            "files, size, stored_bytes, created_at, updated_at, finished_at, host, "
            "progress_done, progress_total, pid, lease_expires_at) "
            "VALUES (?, ?, ?, NULL, ?, ?, 0, 0, 0, ?, ?, NULL, ?, NULL, NULL, ?, ?)",
            (ds_id, number, UPLOADING, source, manifest_id, now, now, *self._hold(lease)),
        )
        return version_record(name, self._version(conn, name, number)[1:])

    def resume_version(
        self, name: str, source: str, manifest_id: str, lease: Lease, stopped: Stopped
    ) -> VersionInfo | None:
        """Take over, under ``lease``, the newest unfinished version of ``name`` made from
        ``source`` whose create has ``stopped``; None if there is none."""
        with self._write() as conn:
            ds = conn.execute(
                "SELECT id FROM datastores WHERE owner_id = ? AND name = ? AND deleted_at IS NULL",
                (self.owner_id, name),
            ).fetchone()
            if ds is None:
                return None
            rows = conn.execute(
                f"SELECT id, {VERSION_COLUMNS} FROM versions WHERE datastore_id = ? AND "
                f"source = ? AND status IN ({_UNFINISHED}) ORDER BY number DESC",
                (ds[0], source),
            ).fetchall()
            for row in rows:
                if not stopped(version_record(name, row[1:])):
                    continue
                now = self._now()
                conn.execute(
                    "UPDATE versions SET status = ?, reason = NULL, manifest_id = ?, "
                    "finished_at = NULL, updated_at = ?, host = ?, pid = ?, "
                    "lease_expires_at = ? WHERE id = ?",
                    (UPLOADING, manifest_id, now, *self._hold(lease), row[0]),
                )
                return version_record(name, self._version(conn, name, row[1])[1:])
            return None

    def renew(self, name: str, number: int, lease: Lease) -> bool:
        """Extend ``lease``'s hold on an unfinished version; False if it no longer holds it."""
        with self._write() as conn:
            rows = conn.execute(
                "SELECT v.id, v.host, v.pid, v.status FROM versions v JOIN datastores d ON "
                "d.id = v.datastore_id WHERE d.owner_id = ? AND d.name = ? AND "
                "d.deleted_at IS NULL AND v.number = ?",
                (self.owner_id, name, number if 1 <= number < 2**63 else 0),
            ).fetchall()
            if not rows or (rows[0][1], rows[0][2]) != (lease.host, lease.pid):
                return False
            if rows[0][3] not in UNFINISHED:
                return False
            conn.execute(
                "UPDATE versions SET host = ?, pid = ?, lease_expires_at = ? WHERE id = ?",
                (*self._hold(lease), rows[0][0]),
            )
            return True

    def fail_abandoned(self, name: str, below: int, stopped: Stopped) -> list[str]:
        """Mark failed the unfinished versions of ``name`` below ``below`` whose create
        stopped; return their refs."""
        marked = []
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT id, {VERSION_COLUMNS} FROM versions WHERE datastore_id = ? AND number < ? "
                f"AND status IN ({_UNFINISHED}) ORDER BY number",
                (self._datastore_id(name), below),
            ).fetchall()
            for row in rows:
                if stopped(version_record(name, row[1:])):
                    now = self._now()
                    reason = f"abandoned: its create stopped and {name}:{below} succeeded since"
                    conn.execute(
                        "UPDATE versions SET status = ?, updated_at = ?, finished_at = ?, "
                        "reason = ? WHERE id = ?",
                        (FAILED, now, now, reason, row[0]),
                    )
                    marked.append(f"{name}:{row[1]}")
        return marked

    def discard_version(self, name: str, number: int) -> None:
        """Remove a version that never held data (see ``Catalog.discard_version``)."""
        with self._write() as conn:
            ds_id = self._datastore_id(name)
            version_id = self._version(conn, name, number)[0]
            conn.execute("DELETE FROM versions WHERE id = ?", (version_id,))
            (last,) = conn.execute(
                "SELECT last_version FROM datastores WHERE id = ?", (ds_id,)
            ).fetchone()
            if last == number:
                last -= 1
                conn.execute("UPDATE datastores SET last_version = ? WHERE id = ?", (last, ds_id))
            if last == 0:  # the datastore was made for this version alone
                conn.execute("DELETE FROM datastores WHERE id = ?", (ds_id,))

    def set_status(
        self,
        name: str,
        number: int,
        status: str,
        *,
        reason: str | None = None,
        files: int | None = None,
        size: int | None = None,
        stored_bytes: int | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Move a version to ``status`` and record its figures; with ``lease``, only if that
        create still holds the version.

        Raises:
            ConflictError: ``lease`` no longer holds it (another create took it over).
        """
        with self._write() as conn:
            row = self._version(conn, name, number)
            host, pid = row[13], row[14]
            if lease is not None and (host, pid) != (lease.host, lease.pid):
                raise ConflictError(
                    f"{name}:{number} was taken over by a create on {host} (pid {pid}) "
                    "after this one stopped renewing its lease; this run's work is discarded"
                )
            now = self._now()
            sets: dict[str, Any] = {"status": status, "reason": reason, "updated_at": now}
            if status in (SUCCEEDED, FAILED):
                sets["finished_at"] = now
            figures = {"files": files, "size": size, "stored_bytes": stored_bytes}
            sets.update((k, v) for k, v in figures.items() if v is not None)
            conn.execute(
                f"UPDATE versions SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                (*sets.values(), row[0]),
            )

    def set_progress(self, name: str, number: int, done: int, total: int | None) -> None:
        """Record how far a version's processing has come."""
        with self._write() as conn:
            version_id = self._version(conn, name, number)[0]
            conn.execute(
                "UPDATE versions SET progress_done = ?, progress_total = ?, updated_at = ? "
                "WHERE id = ?",
                (done, total, self._now(), version_id),
            )
