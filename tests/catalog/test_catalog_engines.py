"""One catalog suite over both engines: SQLite (embedded) and PostgreSQL (team mode, a real
server started by the fixtures). Numbering under concurrency, leases, deletes, migrations
run once when several processes open a fresh database at the same time."""

from __future__ import annotations

import threading

import pytest

from grid.catalog import Catalog
from grid.errors import ConflictError, DatastoreNotFoundError, VersionNotFoundError
from grid.records import Lease

LEASE = Lease("host-a", 1, 60)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("postgres_url")


def _all(fn, n: int) -> list:
    """Run ``fn(i)`` in ``n`` threads at once; return the results (re-raising any error)."""
    results: list = [None] * n
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def work(i: int) -> None:
        try:
            start.wait()
            results[i] = fn(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_several_processes_opening_a_fresh_database_migrate_it_once(url):
    catalogs = _all(lambda _: Catalog(url), 6)
    assert len({c.catalog_id for c in catalogs}) == 1
    for c in catalogs:
        c.close()


def test_numbers_are_consecutive_and_never_reused(url):
    cat = Catalog(url)
    try:
        for expected in (1, 2, 3):
            assert cat.new_version("d", "/src", f"m{expected}", LEASE).number == expected
        cat.delete_version("d", 3)
        assert cat.new_version("d", "/src", "m4", LEASE).number == 4
        cat.delete_datastore("d")
        with pytest.raises(DatastoreNotFoundError):
            cat.versions("d")
        assert cat.new_version("d", "/src", "m5", LEASE).number == 5
        with pytest.raises(VersionNotFoundError):
            cat.version("d", 3)
    finally:
        cat.close()


def test_concurrent_creates_get_distinct_consecutive_numbers(url):
    Catalog(url).close()  # migrated once, then eight writers race
    catalogs = [Catalog(url) for _ in range(8)]
    try:
        got = _all(lambda i: catalogs[i].new_version("new", "/s", f"m{i}", LEASE).number, 8)
        assert sorted(got) == list(range(1, 9))
        assert [v.number for v in catalogs[0].versions("new")] == list(range(1, 9))
        assert [d.name for d in catalogs[0].datastores()] == ["new"]
    finally:
        for c in catalogs:
            c.close()


def test_leases_guard_status_changes_on_both_engines(url):
    cat = Catalog(url)
    try:
        v = cat.new_version("d", "/src", "m", LEASE)
        other = Lease("host-b", 2, 60)
        assert cat.renew("d", v.number, LEASE) and not cat.renew("d", v.number, other)
        with pytest.raises(ConflictError):
            cat.set_status("d", v.number, "succeeded", lease=other)
        assert cat.resume_version("d", "/src", "m2", other, lambda _v: False) is None
        taken = cat.resume_version("d", "/src", "m2", other, lambda _v: True)
        assert taken is not None and (taken.host, taken.manifest_id) == ("host-b", "m2")
        assert not cat.renew("d", v.number, LEASE)
        cat.set_status("d", v.number, "succeeded", lease=other, files=3, size=10)
        done = cat.version("d", v.number)
        assert (done.status, done.files, done.size) == ("succeeded", 3, 10)
        assert done.finished_at is not None and done.created_at.tzinfo is not None
    finally:
        cat.close()


def test_one_of_several_concurrent_resumers_takes_a_stopped_version(url):
    cat = Catalog(url)
    v = cat.new_version("d", "/src", "m", LEASE)
    cat.close()
    catalogs = [Catalog(url) for _ in range(6)]
    try:
        taken = _all(
            lambda i: catalogs[i].resume_version(
                "d", "/src", f"m{i}", Lease(f"h{i}", i, 60), lambda _v: _v.host == "host-a"
            ),
            6,
        )
        winners = [t for t in taken if t is not None]
        assert len(winners) == 1 and winners[0].number == v.number
        assert catalogs[0].version("d", v.number).host == winners[0].host
    finally:
        for c in catalogs:
            c.close()


def test_the_head_revision_the_catalog_checks_is_the_newest_migration():
    """A new migration must move HEAD_REVISION too (else every open runs alembic again)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from grid.catalog import catalog

    cfg = Config()
    cfg.set_main_option("script_location", catalog._MIGRATIONS)
    assert ScriptDirectory.from_config(cfg).get_current_head() == catalog.HEAD_REVISION
