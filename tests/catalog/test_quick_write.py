"""The sqlite3 writer of a create's catalog calls (grid.catalog.quick_write) against Catalog: the
same calls on two catalogs leave the same rows, return the same records and raise the same
errors; it opens only a catalog at the migration head, and is safe across threads."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from grid.catalog import Catalog
from grid.catalog.quick_read import Unsure, open_quick
from grid.catalog.quick_write import QuickWriter
from grid.errors import StorageError
from grid.records import FAILED, INTERRUPTED, PROCESSING, SUCCEEDED, Lease

MINE, OTHER = Lease("host-a", 1, 60), Lease("host-b", 2, 30)


def always(_v):
    return True


def never(_v):
    return False


class Clock:
    """1 ms later at each reading: both catalogs must read their clock at the same points."""

    def __init__(self) -> None:
        self.t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(milliseconds=1)
        return self.t


def attempt(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def scenario(cat, db: str) -> list:
    """Every call a create makes, with the cases of each (calls on either catalog)."""
    out = [
        cat.new_version("a", "/src", "m1", MINE),
        cat.new_version("a", "/src", "m2", MINE),
        cat.set_status("a", 1, PROCESSING, files=3, size=10, stored_bytes=5, lease=MINE),
        cat.set_progress("a", 1, 5, None),
        cat.set_progress("a", 1, 7, 9),
        cat.set_status("a", 1, SUCCEEDED, stored_bytes=7, lease=MINE),
    ]
    for name, number, lease in (("a", 2, MINE), ("a", 2, OTHER), ("a", 1, MINE)):
        out.append(cat.renew(name, number, lease))
    for name, number in (("nope", 1), ("a", 99), ("a", 0), ("a", 2**63)):
        out.append(cat.renew(name, number, MINE))
    out += [
        cat.set_status("a", 2, INTERRUPTED, reason="stopped", lease=MINE),
        cat.resume_version("nope", "/src", "m3", OTHER, always),
        cat.resume_version("a", "/elsewhere", "m3", OTHER, always),
        cat.resume_version("a", "/src", "m3", OTHER, never),
        cat.resume_version("a", "/src", "m3", OTHER, always),
        attempt(cat.set_status, "a", 2, FAILED, reason="x", lease=MINE),
        cat.new_version("a", "/src", "m4", OTHER),
        cat.set_status("a", 3, SUCCEEDED, lease=OTHER),
        cat.new_version("a", "/src", "m5", MINE),  # 4: unfinished, held by a live create
        cat.new_version("a", "/src", "m6", MINE),  # 5: discarded, its number given back
        cat.discard_version("a", 5),
        cat.fail_abandoned("a", 4, always),
        cat.fail_abandoned("a", 5, lambda v: v.number != 4),
        cat.new_version("b", "/b", "m7", MINE),  # a datastore made for this version alone
        cat.discard_version("b", 1),
        cat.new_version("c", "/c", "m8", MINE),
        cat.set_status("c", 1, SUCCEEDED, files=1, lease=MINE),
    ]
    with sqlite3.connect(db) as conn:  # deleted (Catalog.delete_datastore): numbering goes on
        conn.execute(
            "DELETE FROM versions WHERE number = 1 AND datastore_id IN "
            "(SELECT id FROM datastores WHERE name = 'c')"
        )
        conn.execute(
            "UPDATE datastores SET deleted_at = '2026-01-01 00:00:00.000000' WHERE name = 'c'"
        )
    out.append(cat.new_version("c", "/c", "m9", MINE))
    for call, args in (
        (cat.version, ("a", 99)),
        (cat.version, ("gone", 1)),
        (cat.set_status, ("nope", 1, FAILED)),
        (cat.set_status, ("a", 0, FAILED)),
        (cat.set_status, ("a", 2**63, FAILED)),
        (cat.set_progress, ("a", 42, 1, 2)),
        (cat.discard_version, ("a", 99)),
        (cat.fail_abandoned, ("nope", 2, always)),
    ):
        out.append(attempt(call, *args))
    return [*out, cat.versions("a"), cat.versions("c"), cat.version("a", 2)]


def rows(db: str) -> dict[str, list]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("owners", "datastores", "versions")
        }


def fresh(path) -> str:
    Catalog(f"sqlite:///{path}").close()  # created and migrated, owner "local" recorded
    return str(path)


def test_the_calls_of_a_create_leave_the_rows_the_catalog_leaves(tmp_path):
    slow_db, quick_db = fresh(tmp_path / "slow.db"), fresh(tmp_path / "quick.db")
    with sqlite3.connect(slow_db) as a, sqlite3.connect(quick_db) as b:
        created = a.execute("SELECT created_at FROM owners").fetchone()
        b.execute("UPDATE owners SET created_at = ?", created)
    slow = Catalog(f"sqlite:///{slow_db}", clock=Clock())
    quick = open_quick(quick_db, "local", QuickWriter)
    assert isinstance(quick, QuickWriter)
    quick.clock = Clock()
    try:
        expected, got = scenario(slow, slow_db), scenario(quick, quick_db)
        assert got == expected
        assert rows(quick_db) == rows(slow_db)
        assert quick.catalog_id == _installation(quick_db)
    finally:
        slow.close()
        quick.close()


def _installation(db: str) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id FROM installation").fetchone()[0]


def test_it_opens_only_a_current_wal_catalog_with_the_owner(tmp_path):
    db = fresh(tmp_path / "catalog.db")
    assert open_quick(str(tmp_path / "none.db"), "local", QuickWriter) is None
    assert open_quick(db, "somebody", QuickWriter) is None  # Catalog records the owner
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    assert open_quick(db, "local", QuickWriter) is None
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    writer = open_quick(db, "local", QuickWriter)
    assert writer is not None
    writer.close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0009'")
    assert open_quick(db, "local", QuickWriter) is None  # Catalog migrates it


def test_database_errors_are_storage_errors_and_nothing_is_half_written(tmp_path):
    db = fresh(tmp_path / "catalog.db")
    writer = open_quick(db, "local", QuickWriter)
    assert isinstance(writer, QuickWriter)
    writer.new_version("a", "/src", "m1", MINE)
    before = rows(db)
    writer._conn.execute("PRAGMA query_only=ON")
    with pytest.raises(StorageError, match=r"^catalog database error: attempt to write a readonly"):
        writer.new_version("a", "/src", "m2", MINE)
    with pytest.raises(StorageError, match=r"^catalog database error"):
        writer.set_status("a", 1, FAILED, reason="x", lease=MINE)
    writer._conn.execute("PRAGMA query_only=OFF")
    assert rows(db) == before
    writer.set_status("a", 1, FAILED, reason="x", lease=MINE)  # the connection still works
    writer.close()
    with pytest.raises(Unsure):  # closed (by another thread): the caller asks Catalog
        writer.renew("a", 1, MINE)


def test_a_heartbeat_thread_renews_while_the_create_writes(tmp_path):
    db = fresh(tmp_path / "catalog.db")
    writer = open_quick(db, "local", QuickWriter)
    assert isinstance(writer, QuickWriter)
    v = writer.new_version("a", "/src", "m1", MINE)
    done, renewed, errors = threading.Event(), [], []

    def beat() -> None:
        try:
            while not done.is_set():
                renewed.append(writer.renew("a", v.number, MINE))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=beat) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(200):
        writer.set_status("a", v.number, PROCESSING, files=i, lease=MINE)
        assert writer.version("a", v.number).files == i
    done.set()
    for t in threads:
        t.join()
    writer.close()
    assert not errors and renewed and all(renewed)
