"""PostgreSQL restarted under a team-mode server (issue 17): creates and reads in flight get
retries or a clear, transient error naming the database, never a traceback or a version that
is succeeded but unreadable; the same server process answers again once the database is
back (its pool pings connections before use). Also: the engine's pool per process."""

from __future__ import annotations

import os
import random
import threading
import time

import httpx
import psycopg
import pytest
from sqlalchemy import text

from grid.catalog import Catalog
from grid.client.remote import RemoteClient
from grid.errors import DatastoreNotFoundError, GridError, StorageError, VersionNotReadyError
from grid.settings import Settings
from tests.team import new_user, start_server, stop

pytestmark = pytest.mark.postgres

_UNFINISHED = ("uploading", "processing", "optimizing")
_LONG_OUTAGE = 9.0  # seconds: longer than a client goes on trying a request (under 8 s)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _terminate_others(url: str) -> None:
    """End every other session on ``url``'s database, as a restart of the server would."""
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_the_engine_pings_before_use_with_a_pool_sized_per_process(postgres_url, tmp_path):
    settings = Settings.from_env({"GRID_DB_POOL_SIZE": "3", "GRID_DB_MAX_OVERFLOW": "4"})
    assert (Settings.from_env({}).db_pool_size, Settings.from_env({}).db_max_overflow) == (10, 20)
    cat = Catalog(
        postgres_url,
        owner=None,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    try:
        pool = cat.engine.pool
        assert pool.size() == 3 and pool._max_overflow == 4
        assert pool._pre_ping and pool._recycle > 0
    finally:
        cat.close()
    local = Catalog(f"sqlite:///{tmp_path / 'c.db'}")  # SQLite keeps its own settings
    assert local.engine.dialect.name == "sqlite"
    local.close()


def test_a_session_the_database_ended_is_a_transient_error_and_the_next_one_works(
    postgres_url,
):
    cat = Catalog(postgres_url)
    try:
        assert cat.datastores() == []  # a pooled connection, which the server then ends
        _terminate_others(postgres_url)
        assert cat.datastores() == []  # pre-ping replaced it: no error
        with pytest.raises(StorageError) as lost, cat.transaction() as s:
            s.execute(text("SELECT 1"))
            _terminate_others(postgres_url)
            s.execute(text("SELECT 1"))
        assert lost.value.transient
        # what a server would send its callers: what failed, not where the database is
        assert str(lost.value) == (
            "the catalog database cannot be reached (it is restarting, or ended the session); "
            "try again"
        )
        assert cat.datastores() == []
    finally:
        cat.close()


def test_a_password_never_shows_in_a_database_error(postgres_cluster):
    from tests.team import free_port

    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{free_port()}/x?password=s3cret"
    with pytest.raises(StorageError) as refused:
        Catalog(url, owner=None)
    assert refused.value.transient
    assert "s3cret" not in str(refused.value)
    assert str(refused.value).startswith(
        "cannot open the catalog at postgresql+psycopg://postgres:***@127.0.0.1:"
    )


def _folders(root, n: int) -> dict[str, dict[str, bytes]]:
    """``n`` folders of 3 MB each (three files), none alike: path -> {name: bytes}."""
    out = {}
    for i in range(n):
        folder = root / f"set{i}"
        folder.mkdir()
        files = {f"part{j}.bin": os.urandom(1 << 20) for j in range(3)}
        for name, data in files.items():
            (folder / name).write_bytes(data)
        out[str(folder)] = files
    return out


def _about_the_database(exc: BaseException) -> bool:
    return isinstance(exc, GridError) and "catalog database" in str(exc)


@pytest.mark.slow
def test_a_postgres_restart_mid_create_gives_retries_or_clear_errors(
    postgres_cluster, postgres_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("GRID_FSYNC", "0")
    sources = _folders(tmp_path, 5)
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc, url = start_server(postgres_url, str(tmp_path / "objects"), tmp_path / "srv", log)
    _, key = new_user(postgres_url)
    done = threading.Event()
    failed_creates: list[BaseException] = []
    read_errors: list[BaseException] = []
    reads = [0]
    made: list[int] = []

    def write() -> None:
        with RemoteClient(url, key, str(tmp_path / "writer")) as client:
            for source in sources:
                for _ in range(10):  # a failed create, run again once the database is back
                    try:
                        made.append(client.create(source, "ds").number)
                        break
                    except Exception as exc:  # judged below
                        failed_creates.append(exc)
                        time.sleep(1)

    def read(i: int) -> None:
        rng = random.Random(i)
        with RemoteClient(url, key, str(tmp_path / f"reader{i}")) as client:
            while not done.is_set():
                try:
                    ready = [v for v in client.versions("ds") if v.status == "succeeded"]
                    if ready:
                        v = rng.choice(ready)
                        got = client.read_bytes("ds", v.number, "part1.bin")
                        assert got == sources[v.source]["part1.bin"], v.ref
                    reads[0] += 1
                except DatastoreNotFoundError:
                    pass  # before the first create
                except Exception as exc:  # judged below
                    read_errors.append(exc)
                time.sleep(0.05)

    def in_flight() -> bool:
        """A create is under way: a version newer than those made is unfinished."""
        with psycopg.connect(_plain(postgres_url), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM versions WHERE status = ANY(%s) AND number > %s",
                (list(_UNFINISHED), max(made, default=0)),
            ).fetchone()
        return bool(row and row[0])

    def wait_mid_create() -> None:
        deadline = time.monotonic() + 20
        while not in_flight():
            assert time.monotonic() < deadline, "no create in flight"
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    try:
        for t in (writer, *readers):
            t.start()
        wait_mid_create()
        postgres_cluster.restart()  # pg_ctl stop -m fast, then start: well under a second
        while len(made) < 2 and writer.is_alive():
            time.sleep(0.05)
        wait_mid_create()
        postgres_cluster.stop()  # down for longer than a client retries: what does it get?
        try:
            asked = httpx.get(f"{url}/v1/datastores", headers={"Authorization": f"Bearer {key}"})
            ready_while_down = httpx.get(f"{url}/readyz")
            time.sleep(_LONG_OUTAGE)
        finally:
            postgres_cluster.start()
        reads_before = reads[0]
        writer.join(120)
        done.set()
        for t in readers:
            t.join(30)
        assert not writer.is_alive()
        # a clear problem the client retries (503), naming the database, never a 500
        assert asked.status_code == 503, asked.text
        assert asked.headers["content-type"] == "application/problem+json"
        problem = asked.json()
        assert problem["code"] == "storage" and problem["attrs"]["transient"] is True
        assert problem["detail"].startswith("the catalog database cannot be reached (")
        assert str(postgres_cluster.port) not in problem["detail"]
        assert ready_while_down.status_code == 503
        # the same server process answers again: its pool replaced the broken connections
        assert proc.poll() is None
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["database"] == "ok"
        assert reads[0] > reads_before
        with RemoteClient(url, key, str(tmp_path / "checker")) as client:
            assert len(made) == len(sources)
            versions = client.versions("ds")
            by_number = {v.number: v for v in versions}
            for v in versions:
                if v.status == "succeeded":  # whatever committed is whole and readable
                    assert client.verify("ds", v.number).ok, v.ref
                    for name, data in sources[v.source].items():
                        assert client.read_bytes("ds", v.number, name) == data, (v.ref, name)
                else:
                    assert v.number not in made, v.ref
                    with pytest.raises(VersionNotReadyError):
                        client.read_bytes("ds", v.number, "part0.bin")
            assert all(by_number[n].status == "succeeded" for n in made)
    finally:
        done.set()
        stop(proc)
        log.close()
    server_log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-3000:]
    # what failed said why: the database, transient, and nothing else
    odd = [e for e in failed_creates + read_errors if not _about_the_database(e)]
    assert not odd, odd
    assert all(getattr(e, "transient", False) for e in failed_creates + read_errors)
    assert read_errors, "a read during the long outage ends in a clear error"
    assert reads[0] > 10
