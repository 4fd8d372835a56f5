"""The catalog: transactions on datastores and versions, returning plain records.

Version numbers are allocated under the unique (datastore, number) constraint, inside a write
transaction (``BEGIN IMMEDIATE`` on SQLite), so concurrent creates get distinct consecutive
numbers on any engine.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from grid.catalog.engine import (
    MAX_OVERFLOW,
    POOL_SIZE,
    database_error,
    lost,
    open_engine,
    reason_of,
    shown,
)
from grid.catalog.models import Datastore, Installation, Owner, Version
from grid.catalog.runs import refuse_in_use
from grid.errors import ConflictError, DatastoreNotFoundError, StorageError, VersionNotFoundError
from grid.records import (
    FAILED,
    SUCCEEDED,
    UNFINISHED,
    UPLOADING,
    DatastoreInfo,
    Lease,
    VersionInfo,
)

_MIGRATIONS = str(Path(__file__).parent / "migrations")
# The newest migration; checked with one query so that Alembic is imported only to migrate.
HEAD_REVISION = "0010"
_ALLOCATE_TRIES = 20
_MIGRATE_LOCK = 0x67726964  # "grid": the advisory lock migrations hold on PostgreSQL


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(name: str, v: Version) -> VersionInfo:
    return VersionInfo(
        datastore=name,
        number=v.number,
        status=v.status,
        reason=v.reason,
        source=v.source,
        files=v.files,
        size=v.size,
        stored_bytes=v.stored_bytes,
        created_at=_utc(v.created_at),  # type: ignore[arg-type]
        finished_at=_utc(v.finished_at),
        manifest_id=v.manifest_id,
        progress_done=v.progress_done,
        progress_total=v.progress_total,
        host=v.host,
        pid=v.pid,
        lease_expires_at=_utc(v.lease_expires_at),
    )


Stopped = Callable[[VersionInfo], bool]


class Catalog:
    """Metadata of one installation.

    Args:
        url: SQLAlchemy database URL (``sqlite:///path`` or ``postgresql://...``).
        owner: the owner every call acts for.
        pool_size, max_overflow: this process's connections to PostgreSQL, kept and at peaks
            (``grid.catalog.engine``; GRID_DB_POOL_SIZE, GRID_DB_MAX_OVERFLOW).

    Raises:
        StorageError: the database cannot be opened (transient if it cannot be reached).
    """

    def __init__(
        self,
        url: str,
        owner: str | None = "local",
        *,
        clock: Any = None,
        pool_size: int = POOL_SIZE,
        max_overflow: int = MAX_OVERFLOW,
    ) -> None:
        self.url = url
        self._now = clock or (lambda: datetime.now(UTC))
        engine: Engine | None = None
        try:
            engine = self.engine = open_engine(url, pool_size=pool_size, max_overflow=max_overflow)
            self._migrate()
        except sa_exc.SQLAlchemyError as exc:
            if engine is not None:
                engine.dispose()
            raise StorageError(
                f"cannot open the catalog at {shown(url)}: {reason_of(exc)}",
                transient=engine is not None and lost(exc, engine),
            ) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # A server's catalog acts for no owner of its own (None): only accounts use it.
        self.owner_id = self._owner(owner) if owner is not None else 0
        self._id: str | None = None

    def acting_for(self, owner_id: int) -> Catalog:
        """This catalog (same engine, same connections) acting for another owner: how a server
        serves each caller's datastores."""
        view = copy.copy(self)
        view.owner_id = owner_id
        return view

    def owner_id_of(self, name: str) -> int | None:
        """The id of owner ``name``; None if there is none."""
        with self._tx() as s:
            return s.scalar(select(Owner.id).where(Owner.name == name))

    @property
    def catalog_id(self) -> str:
        """This catalog's id (random, made with it): the storage it writes is claimed by it."""
        if self._id is None:
            with self._tx() as s:
                self._id = s.scalars(select(Installation.id)).one()
        return self._id

    def signing_secret(self) -> str:
        """A secret shared by every server on this database (made on first use): signs the
        object URLs a server with a local-folder storage hands out."""
        with self._tx() as s:
            row = s.scalars(select(Installation).with_for_update()).one()
            if row.secret is None:
                import secrets

                row.secret = secrets.token_hex(32)
            return row.secret

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Ask the database a trivial question (raises whatever the driver raises)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Several servers starting at once: one migrates, the others wait here for it
                # and then find the schema current (the lock ends with the transaction).
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK})
            if inspect(conn).has_table("alembic_version"):
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                if current == HEAD_REVISION:
                    return
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", _MIGRATIONS)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except sa_exc.SQLAlchemyError as exc:
            error = database_error(exc, self.engine)  # None: the caller's (IntegrityError)
            if error is None:
                raise
            raise error from exc

    def transaction(self) -> AbstractContextManager[Session]:
        """A write transaction on the catalog's database (for the package's other modules)."""
        return self._tx()

    def now(self) -> datetime:
        """The catalog's clock (UTC)."""
        return self._now()

    def _owner(self, name: str) -> int:
        for _ in range(2):  # another process may make the same owner at the same moment
            try:
                with self._tx() as s:
                    owner = s.scalar(select(Owner).where(Owner.name == name))
                    if owner is None:
                        owner = Owner(name=name, created_at=self._now())
                        s.add(owner)
                        s.flush()
                    return owner.id
            except sa_exc.IntegrityError:
                continue
        raise StorageError(f"could not record the owner {name!r} in the catalog; try again")

    def _datastore(self, s: Session, name: str) -> Datastore:
        ds = s.scalar(
            select(Datastore).where(Datastore.owner_id == self.owner_id, Datastore.name == name)
        )
        if ds is None or ds.deleted_at is not None:
            raise DatastoreNotFoundError(f"no datastore named {name!r}", datastore=name)
        return ds

    # -- writes ----------------------------------------------------------------------------
    def _hold(self, v: Version, lease: Lease) -> None:
        v.host, v.pid = lease.host, lease.pid
        v.lease_expires_at = self._now() + timedelta(seconds=lease.seconds)

    def new_version(self, name: str, source: str, manifest_id: str, lease: Lease) -> VersionInfo:
        """Create datastore ``name`` if needed and allocate its next version, status uploading,
        held by ``lease``."""
        for _ in range(_ALLOCATE_TRIES):
            try:
                with self._tx() as s:
                    s.get(Owner, self.owner_id, with_for_update=True)  # as gc's drops do
                    ds = s.scalar(
                        select(Datastore).where(
                            Datastore.owner_id == self.owner_id, Datastore.name == name
                        )
                    )
                    now = self._now()
                    if ds is None:
                        ds = Datastore(
                            owner_id=self.owner_id, name=name, created_at=now, last_version=0
                        )
                        s.add(ds)
                    elif ds.deleted_at is not None:
                        ds.deleted_at, ds.created_at = None, now
                    ds.last_version += 1
                    s.flush()
                    v = Version(
                        datastore_id=ds.id,
                        number=ds.last_version,
                        status=UPLOADING,
                        source=source,
                        manifest_id=manifest_id,
                        files=0,
                        size=0,
                        stored_bytes=0,
                        created_at=now,
                        updated_at=now,
                    )
                    self._hold(v, lease)
                    s.add(v)
                    s.flush()
                    return _record(name, v)
            except sa_exc.IntegrityError:
                continue  # another writer took that number (or created the datastore): retry
        raise StorageError(f"could not allocate a version number for {name!r}; try again")

    def resume_version(
        self, name: str, source: str, manifest_id: str, lease: Lease, stopped: Stopped
    ) -> VersionInfo | None:
        """Take over, under ``lease``, the newest unfinished version of ``name`` made from
        ``source`` whose create has ``stopped``; None if there is none."""
        with self._tx() as s:
            s.get(Owner, self.owner_id, with_for_update=True)  # as gc's drops do
            ds = s.scalar(
                select(Datastore).where(
                    Datastore.owner_id == self.owner_id,
                    Datastore.name == name,
                    Datastore.deleted_at.is_(None),
                )
            )
            if ds is None:
                return None
            rows = s.scalars(
                select(Version)
                .where(
                    Version.datastore_id == ds.id,
                    Version.source == source,
                    Version.status.in_(UNFINISHED),
                )
                .order_by(Version.number.desc())
                .with_for_update()
            )
            for v in rows:
                if stopped(_record(name, v)):
                    v.status, v.reason, v.manifest_id = UPLOADING, None, manifest_id
                    v.finished_at, v.updated_at = None, self._now()
                    self._hold(v, lease)
                    return _record(name, v)
            return None

    def renew(self, name: str, number: int, lease: Lease) -> bool:
        """Extend ``lease``'s hold on an unfinished version; False if it no longer holds it
        (another create took the version over after the hold lapsed, or it was deleted)."""
        with self._tx() as s:
            try:
                v = self._version_row(s, name, number)
            except (DatastoreNotFoundError, VersionNotFoundError):
                return False
            if (v.host, v.pid) != (lease.host, lease.pid) or v.status not in UNFINISHED:
                return False
            self._hold(v, lease)
            return True

    def fail_abandoned(self, name: str, below: int, stopped: Stopped) -> list[str]:
        """Mark failed the unfinished versions of ``name`` numbered below ``below`` whose
        create stopped (a newer version has succeeded, so nobody will resume them); return
        their refs."""
        marked = []
        with self._tx() as s:
            ds = self._datastore(s, name)
            for v in s.scalars(
                select(Version).where(
                    Version.datastore_id == ds.id,
                    Version.number < below,
                    Version.status.in_(UNFINISHED),
                )
            ):
                if stopped(_record(name, v)):
                    v.status, v.updated_at = FAILED, self._now()
                    v.finished_at = v.updated_at
                    v.reason = f"abandoned: its create stopped and {name}:{below} succeeded since"
                    marked.append(f"{name}:{v.number}")
        return marked

    def discard_version(self, name: str, number: int) -> None:
        """Remove a version that never held data (an unchanged re-run, a refused archive); its
        number is given back if no later version took one, and a datastore made for it alone
        goes too."""
        with self._tx() as s:
            ds = self._datastore(s, name)
            v = self._version_row(s, name, number)
            s.delete(v)
            s.flush()
            if ds.last_version == number:
                ds.last_version -= 1
            if ds.last_version == 0:  # the datastore was made for this version alone
                s.delete(ds)

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
        with self._tx() as s:
            v = self._version_row(s, name, number)
            if lease is not None and (v.host, v.pid) != (lease.host, lease.pid):
                raise ConflictError(
                    f"{name}:{number} was taken over by a create on {v.host} (pid {v.pid}) "
                    "after this one stopped renewing its lease; this run's work is discarded"
                )
            v.status = status
            v.reason = reason
            v.updated_at = self._now()
            if status in (SUCCEEDED, FAILED):
                v.finished_at = v.updated_at
            for attr, value in (("files", files), ("size", size), ("stored_bytes", stored_bytes)):
                if value is not None:
                    setattr(v, attr, value)

    def set_progress(self, name: str, number: int, done: int, total: int | None) -> None:
        """Record how far a version's processing has come (bytes of an archive downloaded)."""
        with self._tx() as s:
            v = self._version_row(s, name, number)
            v.progress_done, v.progress_total, v.updated_at = done, total, self._now()

    def set_manifest(self, name: str, number: int, manifest_id: str) -> None:
        """Point a version at a rewritten manifest (gc moved some of its blobs)."""
        with self._tx() as s:
            self._version_row(s, name, number).manifest_id = manifest_id

    def delete_version(self, name: str, number: int) -> VersionInfo:
        """Remove a version's row and return it (the caller removes its manifest).

        Raises:
            ConflictError: a live run or session attaches it (nothing deleted).
        """
        with self._tx() as s:
            v = self._version_row(s, name, number)
            refuse_in_use(s, v.datastore_id, [number], self._now())
            record = _record(name, v)
            s.delete(v)
            return record

    def delete_datastore(self, name: str) -> list[VersionInfo]:
        """Remove a datastore and all its versions; return the versions removed.

        Raises:
            ConflictError: a live run or session attaches one of them (nothing deleted).
        """
        with self._tx() as s:
            ds = self._datastore(s, name)
            versions = s.scalars(
                select(Version).where(Version.datastore_id == ds.id).with_for_update()
            ).all()
            refuse_in_use(s, ds.id, [v.number for v in versions], self._now())
            records = [_record(name, v) for v in versions]
            for v in versions:
                s.delete(v)
            ds.deleted_at = self._now()
            return records

    # -- reads -----------------------------------------------------------------------------
    def _version_row(self, s: Session, name: str, number: int, lock: bool = True) -> Version:
        """The row of ``name:number``, locked until the transaction ends (on PostgreSQL; SQLite
        serialises writers anyway) unless only read."""
        ds = self._datastore(s, name)
        if not 1 <= number < 2**63:  # beyond SQLite's integers: no such version, not a crash
            raise VersionNotFoundError(
                f"datastore {name!r} has no version {number}", datastore=name, version=number
            )
        query = select(Version).where(Version.datastore_id == ds.id, Version.number == number)
        v = s.scalar(query.with_for_update() if lock else query)
        if v is None:
            raise VersionNotFoundError(
                f"datastore {name!r} has no version {number}", datastore=name, version=number
            )
        return v

    def version(self, name: str, number: int) -> VersionInfo:
        with self._tx() as s:
            return _record(name, self._version_row(s, name, number, lock=False))

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of ``name``, oldest first."""
        with self._tx() as s:
            ds = self._datastore(s, name)
            rows = s.scalars(
                select(Version).where(Version.datastore_id == ds.id).order_by(Version.number)
            )
            return [_record(name, v) for v in rows]

    def manifest_users(self, manifest_id: str) -> list[str]:
        """The refs of the owner's versions that use manifest ``manifest_id``."""
        with self._tx() as s:
            rows = s.execute(
                select(Datastore.name, Version.number)
                .join(Version, Version.datastore_id == Datastore.id)
                .where(Datastore.owner_id == self.owner_id, Version.manifest_id == manifest_id)
            )
            return [f"{name}:{number}" for name, number in rows]

    def datastores(self) -> list[DatastoreInfo]:
        """Every datastore of the owner with its version count and latest version."""
        with self._tx() as s:
            out = []
            for ds in s.scalars(
                select(Datastore)
                .where(Datastore.owner_id == self.owner_id, Datastore.deleted_at.is_(None))
                .order_by(Datastore.name)
            ):
                count = s.scalar(select(func.count()).where(Version.datastore_id == ds.id)) or 0
                latest = s.scalar(
                    select(Version)
                    .where(Version.datastore_id == ds.id)
                    .order_by(Version.number.desc())
                    .limit(1)
                )
                out.append(
                    DatastoreInfo(
                        name=ds.name,
                        created_at=_utc(ds.created_at),  # type: ignore[arg-type]
                        versions=count,
                        latest=_record(ds.name, latest) if latest else None,
                    )
                )
            return out
