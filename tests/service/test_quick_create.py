"""A create on an existing embedded catalog writes it with sqlite3 (grid.catalog.quick_write,
through grid.Client's LazyCatalog): the same versions, statuses, leases and resumes as through
SQLAlchemy; a catalog to migrate takes the normal path; the CLI's re-run never imports it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

import grid
import grid.service.create as create_module
from grid.errors import Interrupted, SourceError
from tests.test_startup import HEAVY, heavy, imported

# The rows a scenario leaves, less what differs from run to run (times, manifest ids, pids,
# the source folder).
_VERSION = "number, status, reason, files, size, host, pid > 0, finished_at IS NULL"


def rows(home) -> list[tuple]:
    with sqlite3.connect(home / "catalog.db") as conn:
        return [
            *conn.execute("SELECT name, last_version, deleted_at FROM datastores ORDER BY id"),
            *conn.execute(f"SELECT {_VERSION} FROM versions ORDER BY id"),
        ]


def create(home, src, *, slow: bool = False, **kwargs) -> grid.VersionInfo | str:
    """One create in a fresh client, as the CLI makes it; ``slow``: through SQLAlchemy."""
    existed = (home / "catalog.db").exists()
    with grid.Client(str(home)) as client:
        if slow:
            client._catalog.opened()
        try:
            return client.create(str(src), "d", **kwargs)
        except (Interrupted, SourceError) as exc:
            return type(exc).__name__
        finally:  # the first create makes the catalog: SQLAlchemy creates and migrates it
            assert (client._catalog._catalog is None) is (existed and not slow)


def stop_at_reuse(monkeypatch, exc: BaseException) -> None:
    def stop(*_args, **_kwargs):
        raise exc

    monkeypatch.setattr(create_module, "reuse_unchanged", stop)


def scenario(home, src, monkeypatch, slow: bool) -> list:
    (src / "a.txt").write_text("a")
    out = [create(home, src, slow=slow), create(home, src, slow=slow)]
    out.append(create(home, src, slow=slow, skip_unchanged=True))  # discarded: no new number
    with monkeypatch.context() as m:
        stop_at_reuse(m, KeyboardInterrupt())
        out.append(create(home, src, slow=slow))  # left interrupted
    out.append(create(home, src, slow=slow))  # resumes it under the same number
    with monkeypatch.context() as m:
        stop_at_reuse(m, SourceError("cannot read a.txt", path="a.txt"))
        out.append(create(home, src, slow=slow))  # failed, with the reason
    (src / "b.txt").write_text("b")
    out.append(create(home, src, slow=slow))
    return [v if isinstance(v, str) else (v.number, v.status, v.files) for v in out]


def test_creates_leave_the_rows_they_leave_through_sqlalchemy(tmp_path, monkeypatch):
    monkeypatch.setenv("GRID_FSYNC", "0")
    results = {}
    for slow in (False, True):
        home, src = tmp_path / f"home-{slow}", tmp_path / f"src-{slow}"
        src.mkdir()
        results[slow] = scenario(home, src, monkeypatch, slow), rows(home)
    assert results[False] == results[True]
    assert results[False][0] == [
        (1, "succeeded", 1),
        (2, "succeeded", 1),
        (2, "succeeded", 1),  # unchanged: the latest version, no new one
        "Interrupted",
        (3, "succeeded", 1),
        "SourceError",
        (5, "succeeded", 2),
    ]
    assert [r[1:3] for r in results[False][1][1:]] == [
        ("succeeded", None),
        ("succeeded", None),
        ("succeeded", None),
        ("failed", "cannot read a.txt"),
        ("succeeded", None),
    ]


def test_a_killed_create_is_resumed_through_sqlite3(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    create(home, src)
    kill = (
        "import os, sys, grid, grid.service.create as m\n"
        "m.reuse_unchanged = lambda *a, **k: os._exit(9)\n"
        "grid.Client().create(sys.argv[1], 'd')\n"
    )
    p = subprocess.run([sys.executable, "-c", kill, str(src)], env=os.environ, timeout=120)
    assert p.returncode == 9
    left = rows(home)[-1]
    assert left[:2] == (2, "uploading")  # its lease names a process that is gone
    again = create(home, src)
    assert not isinstance(again, str) and (again.number, again.status) == (2, "succeeded")


def test_a_catalog_to_migrate_is_opened_and_migrated(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    create(home, src)
    with sqlite3.connect(home / "catalog.db") as conn:  # as the previous release left it
        conn.execute("DROP TABLE gone_packs")
        conn.execute("UPDATE alembic_version SET version_num = '0009'")
    with grid.Client(str(home)) as client:
        assert client.create(str(src), "d").number == 2
        assert client._catalog._catalog is not None  # the normal path, which migrated
    with sqlite3.connect(home / "catalog.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0010",)]
        assert conn.execute("SELECT count(*) FROM gone_packs").fetchone() == (0,)


@pytest.mark.parametrize("flags", [[], ["--skip-unchanged"]])
def test_the_cli_rerun_imports_no_sqlalchemy(tmp_path, home, flags):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    create(home, src)
    args = ["datastore", "create", str(src), "--name", "d", *flags]
    modules = imported(tmp_path, {"GRID_HOME": str(home)}, *args)
    assert heavy(modules, HEAVY) == []
    assert "grid.catalog.quick_write" in modules and "rich.progress" not in modules
    made = [(1, "succeeded")] if flags else [(1, "succeeded"), (2, "succeeded")]
    assert [r[:2] for r in rows(home)[1:]] == made
