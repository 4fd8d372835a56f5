"""The catalog's engine: one per process, its pool sized for that process, connections checked
before use; and the driver's errors as grid errors (a database that went away is transient)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url

from grid.errors import StorageError

# A server process answers on a threadpool of 40 and runs jobs beside it; a request holds a
# connection only for its transactions, so 10 kept plus 20 at peaks serve it: 30 at most per
# process, so 3 uvicorn workers fit PostgreSQL's default of 100 connections.
POOL_SIZE = 10
MAX_OVERFLOW = 20
POOL_TIMEOUT = 30.0  # seconds a transaction waits for a free connection
_RECYCLE = 1800  # seconds: replaced before a firewall or proxy drops it idle
_CONNECT_TIMEOUT = 10  # seconds, so that an unreachable host fails a request, not hangs it
# SQLSTATEs of a server going away or not taking connections yet: admin shutdown (pg_ctl
# stop/restart), crash shutdown, starting up or shutting down.
_GOING = ("57P01", "57P02", "57P03")
# serialization failure, deadlock, too many connections: the next try may pass
_RETRY = ("40001", "40P01", "53300")


def open_engine(
    url: str, *, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW
) -> Engine:
    """The engine on ``url``: PostgreSQL with a pool of ``pool_size`` (+ ``max_overflow`` at
    peaks) whose connections are pinged at checkout, so that those a restart of the database
    broke are replaced instead of failing the next request; SQLite as it always was."""
    if make_url(url).get_backend_name() != "postgresql":
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":
            _sqlite_setup(engine)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=POOL_TIMEOUT,
        pool_pre_ping=True,
        pool_recycle=_RECYCLE,
        connect_args={"connect_timeout": _CONNECT_TIMEOUT},
    )


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        # first: switching to WAL takes a lock that other processes opening the same fresh
        # database may hold, and it must wait for them as long as any statement does
        dbapi_conn.execute("PRAGMA busy_timeout=60000")
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def shown(url: str) -> str:
    """``url`` fit for a message: no password, no query (which may carry one)."""
    try:
        return make_url(url).set(query={}).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:  # not a URL: show its scheme only, it may hold a password
        return f"{url.partition(':')[0]}:..."


def reason_of(exc: sa_exc.SQLAlchemyError) -> str:
    """The driver's words (its first line), not the SQL statement and a documentation link."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def lost(exc: sa_exc.SQLAlchemyError, engine: Engine) -> bool:
    """Whether ``exc`` says the database server went away or cannot be reached."""
    return _lost_why(exc, engine) is not None


def _lost_why(exc: sa_exc.SQLAlchemyError, engine: Engine) -> str | None:
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if state is not None and state.startswith(_GOING):
        return "it is restarting, or ended the session"
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "the connection was lost"
    if engine.dialect.name != "postgresql":
        return None  # SQLite is a file: its errors are the disk's, not a connection's
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) and (
        state is None or state.startswith("08")
    ):
        return "no connection: refused, lost or timed out"
    return None


def database_error(exc: sa_exc.SQLAlchemyError, engine: Engine) -> StorageError | None:
    """``exc`` as the StorageError to raise instead (transient when a retry may pass), or None
    for one the caller handles itself (a constraint, a bug in a statement).

    A server sends the message to its callers: it says what failed, never where the
    database is (the driver's words name its host); the cause stays chained for ``--debug``.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # every connection of this process's pool busy
        return StorageError(
            "the catalog database is busy: every pooled connection stayed in use for "
            f"{POOL_TIMEOUT:g} s; try again",
            transient=True,
        )
    why = _lost_why(exc, engine)
    if why is not None:
        return StorageError(
            f"the catalog database cannot be reached ({why}); try again", transient=True
        )
    if isinstance(exc, sa_exc.OperationalError):
        state = getattr(exc.orig, "sqlstate", None) or ""
        return StorageError(f"catalog database error: {reason_of(exc)}", transient=state in _RETRY)
    return None
