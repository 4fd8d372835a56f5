"""Workers as real processes (`grid worker`) for a server that runs no jobs itself
(`--no-jobs`): an import is a job a worker runs; a worker killed with kill -9 mid-import
leaves a job that another worker takes over once the lease lapses, finishing the same
version, which then verifies and reads back byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import timedelta

import pytest

from grid.catalog import Catalog
from grid.catalog.jobs import JobQueue
from grid.client.remote import RemoteClient
from tests.archive_server import ArchiveServer, tar_gz
from tests.team import GRID, new_user, wait_for
from tests.web import grid_server

pytestmark = pytest.mark.slow


def _worker(database: str, storage: str, log, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*GRID, "worker", "--database-url", database, "--storage-url", storage, *args],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.parametrize("at", [0.1, 0.95])
def test_a_worker_killed_mid_import_is_replaced_and_the_same_version_finishes(tmp_path, at):
    files = {f"set/{i:03d}.bin": os.urandom(200_000) for i in range(40)}
    archive = tar_gz(files)
    cut = int(len(archive) * at)
    storage = str(tmp_path / "objects")
    with (
        ArchiveServer() as archives,
        grid_server(tmp_path, storage, "--no-jobs", "--allow-private-urls") as (database, url),
    ):
        archives.served.files["/set.tar.gz"] = archive
        archives.served.stall_after = cut  # the first download stops there
        _, key = new_user(database)
        log = open(tmp_path / "workers.log", "wb")  # noqa: SIM115 - closed below
        first = _worker(database, storage, log, "--lease", "3")
        made: dict[str, object] = {}
        with RemoteClient(url, key, str(tmp_path / "laptop")) as client:

            def create() -> None:
                try:
                    made["version"] = client.create(archives.url("/set.tar.gz"), "set")
                except Exception as exc:  # shown by the assertion below
                    made["error"] = exc

            asking = threading.Thread(target=create)
            asking.start()

            def stalled():
                versions = client.versions("set") if client.list() else []
                return [v for v in versions if (v.progress_done or 0) >= cut]

            (held,) = wait_for(stalled)
            os.kill(first.pid, signal.SIGKILL)  # mid-import
            first.wait()
            archives.served.stall_after = None
            archives.served.resume.set()
            second = _worker(database, storage, log, "--lease", "3")
            try:
                asking.join(120)
                assert "error" not in made, made
                version = made["version"]
                assert version.number == held.number == 1  # the same version, finished
                assert version.status == "succeeded" and version.files == len(files)
                assert client.verify("set", 1).ok
                for name, data in list(files.items())[:5]:
                    assert client.read_bytes("set", 1, name.removeprefix("set/")) == data
                assert [v.number for v in client.versions("set")] == [1]
                catalog = Catalog(database, owner=None)
                (job,) = JobQueue(catalog).list([catalog.owner_id_of(client.username)])
                catalog.close()
                assert job.kind == "import" and job.state == "succeeded" and job.attempts == 2
                assert job.result["version"]["number"] == 1
            finally:
                second.terminate()
                second.wait(30)
                log.close()


def test_a_worker_killed_mid_check_of_a_commit_is_replaced_and_the_create_succeeds(tmp_path):
    """A create's commit is a `verify` job: its worker killed while checking the upload, another
    takes the job over once the lease lapses (and the pack checks the dead one left), and the
    create that waited on its commit succeeds, once."""
    folder = tmp_path / "data"
    folder.mkdir()
    files = {f"{i:02d}.bin": os.urandom(4_000_000) for i in range(40)}  # 160 MB to check
    for name, data in files.items():
        (folder / name).write_bytes(data)
    storage = str(tmp_path / "objects")
    with grid_server(tmp_path, storage, "--no-jobs") as (database, url):
        _, key = new_user(database)
        log = open(tmp_path / "workers.log", "wb")  # noqa: SIM115 - closed below
        first = _worker(database, storage, log, "--lease", "3")
        catalog = Catalog(database, owner=None)
        made: dict[str, object] = {}
        second = None
        try:
            with RemoteClient(url, key, str(tmp_path / "laptop")) as client:

                def create() -> None:
                    try:
                        made["version"] = client.create(str(folder), "big")
                    except Exception as exc:  # shown by the assertion below
                        made["error"] = exc

                asking = threading.Thread(target=create)
                asking.start()
                owner = wait_for(lambda: catalog.owner_id_of(client.username))
                queue = JobQueue(catalog)

                def checking():
                    return [j for j in queue.list([owner]) if j.kind == "verify"
                            and j.state == "running"]  # fmt: skip

                deadline = time.monotonic() + 120
                while not checking():
                    assert time.monotonic() < deadline and asking.is_alive(), made
                    time.sleep(0.01)
                os.kill(first.pid, signal.SIGKILL)  # mid-check
                first.wait()
                second = _worker(database, storage, log, "--lease", "3")
                asking.join(180)
                assert "error" not in made, made
                version = made["version"]
                assert version.number == 1 and version.status == "succeeded"
                assert client.verify("big", 1).ok
                assert client.read_bytes("big", 1, "07.bin") == files["07.bin"]
                (job,) = [j for j in queue.list([owner]) if j.kind == "verify"]
                assert job.state == "succeeded" and job.attempts == 2
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(30)
            catalog.close()
            log.close()


def test_an_import_taken_over_after_its_version_succeeded_answers_with_that_version(tmp_path):
    """The worst moment to die: the create succeeded, but neither its packs' registration nor
    the job's end was recorded. gc meanwhile keeps the version's packs (in use, registered
    or not); the worker that takes the job over finds the version, registers its packs and
    makes no second one."""
    from grid.catalog import Accounts
    from grid.server.access import OwnerView
    from grid.server.import_jobs import import_into, options_of
    from grid.server.state import open_state
    from grid.server.worker import Worker
    from grid.service.publish import OwnerArea
    from grid.service.server_gc import collect

    files = {f"d/{i}.bin": os.urandom(50_000) for i in range(10)}
    with ArchiveServer() as archives:
        archives.served.files["/d.tar.gz"] = tar_gz(files)
        state = open_state(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"),
                           scratch=str(tmp_path / "scratch"), allow_private_urls=True)  # fmt: skip
        try:
            Accounts(state.catalog).create_user("alice")
            owner = state.catalog.owner_id_of("alice")
            view = OwnerView("alice", owner, state.catalog.acting_for(owner))
            payload = {"name": "d", "source": archives.url("/d.tar.gz"),
                       "allow_private_urls": True}  # fmt: skip
            queue = JobQueue(state.catalog)
            job = queue.enqueue(owner, "import", payload)
            assert queue.claim("dead", 0.5, ["import"]).attempts == 1
            made = import_into(state, view, "d", payload["source"], options_of(state, payload))
            pack_ids = [pid for pid, *_ in state.packs.listing(owner)]
            for pid in pack_ids:  # it died before registering them
                state.packs.unregister(owner, pid)
            area = OwnerArea(state.objects, "alice", owner)
            swept = collect(area, state.packs, view.catalog, state.scratch, grace=0,
                            now_utc=view.catalog.now() + timedelta(days=2))  # fmt: skip
            assert swept.retired_deleted == 0 and swept.packs_deleted == 0
            time.sleep(0.6)  # the dead worker's lease lapses
            ended = Worker(state, "second").run_one()
            assert ended is not None and ended.id == job.id and ended.attempts == 2
            assert ended.state == "succeeded" and ended.result["version"]["number"] == 1
            assert [v.number for v in view.catalog.versions("d")] == [made.number] == [1]
            assert set(state.packs.verified(owner, pack_ids)) == set(pack_ids)
        finally:
            state.catalog.close()
