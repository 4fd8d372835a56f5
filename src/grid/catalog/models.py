"""SQLAlchemy table definitions. Schema changes go through an Alembic migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Installation(Base):
    """One row: this catalog's id, written into the claim of the storage it uses."""

    __tablename__ = "installation"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Signs the object URLs a server hands out for a local-folder storage (made on first use).
    secret: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Owner(Base):
    """A user or team (``kind``); dedup and storage are scoped to an owner."""

    __tablename__ = "owners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(8), default="user")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class TeamMember(Base):
    """A user (owner of kind user) in a team (owner of kind team)."""

    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), primary_key=True)


class ApiKey(Base):
    """A user's API key: the public id and a SHA-256 of the whole key, never the key."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A run key: it reads what run ``run_id`` attaches while the run lives, nothing else.
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Datastore(Base):
    __tablename__ = "datastores"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Highest version number ever allocated: numbers are never reused, even after deletes.
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    # Set when the datastore is deleted; the row stays so that numbering continues if the
    # name is used again.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("datastore_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    datastore_id: Mapped[int] = mapped_column(
        ForeignKey("datastores.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(Text)
    manifest_id: Mapped[str] = mapped_column(String(64))
    files: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    # While processing: bytes done and expected (an archive's download); None when unknown.
    progress_done: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    progress_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pid: Mapped[int] = mapped_column(Integer, default=0)
    # While unfinished: the create on (host, pid) holds the version until then, renewing it as
    # it runs; once past, anyone may resume or fail the version.
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class Pack(Base):
    """A pack an owner has in team mode: registered (``verified`` False) while the server
    checks it, then with its trailer; ``seq`` orders the packs for clients that sync."""

    __tablename__ = "packs"
    __table_args__ = (UniqueConstraint("owner_id", "pack_id"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"))
    pack_id: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    trailer: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Run(Base):
    """A run or session of a user, supervised by process ``pid`` on ``host`` while its
    lease is renewed; ``command`` and ``details`` are JSON."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(255))
    command: Mapped[str] = mapped_column(Text)
    executor: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    log_path: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")


class RunUse(Base):
    """A datastore version a run attached (lineage); ``detached_at`` once a session let go."""

    __tablename__ = "run_uses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    datastore_id: Mapped[int] = mapped_column(ForeignKey("datastores.id"))
    number: Mapped[int] = mapped_column(Integer)
    shown_as: Mapped[str] = mapped_column(String(160))  # the name as the run's user gave it
    path: Mapped[str] = mapped_column(Text, default="")
    attached_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Job(Base):
    """Work for a worker: ``kind`` with a JSON ``payload``, for an owner; ``state`` queued,
    running (held by ``worker`` until ``lease_until``), succeeded, failed or cancelled;
    ``result`` (JSON) or ``error`` once done."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str] = mapped_column(String(255), default="")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    result: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str] = mapped_column(Text, default="")


class Schedule(Base):
    """A re-import kept by the server: ``source`` (an archive URL or ``s3://`` prefix) into
    datastore ``name`` of an owner every ``every_seconds``; ``options`` (JSON) are the
    import's; ``fingerprint`` is what the source looked like at the last version made, so an
    unchanged source makes none."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text)
    every_seconds: Mapped[int] = mapped_column(Integer)
    keep_last: Mapped[int | None] = mapped_column(Integer, nullable=True)
    options: Mapped[str] = mapped_column(Text, default="{}")
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    fingerprint: Mapped[str] = mapped_column(Text, default="")
    last_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GonePack(Base):
    """A pack gc deleted: clients that learned it (``Pack.seq``) forget it when they sync
    (``seq`` here orders the deletions)."""

    __tablename__ = "gone_packs"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    pack_id: Mapped[str] = mapped_column(String(64))
    gone_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
