"""`grid job list|show|cancel` against a real `grid server` whose own worker runs imports:
jobs are listed for their owner only, a cancel stops a running import (its version fails,
saying so, and nothing half-made is readable), and bad ids are one clear line each."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import httpx
import pytest

from tests.archive_server import ArchiveServer, tar_gz
from tests.team import GRID, new_user, wait_for
from tests.web import grid_server

pytestmark = pytest.mark.slow


def _grid(url: str, key: str, home, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRID_URL": url, "GRID_API_KEY": key, "GRID_HOME": str(home)}
    return subprocess.run([*GRID, *args], env=env, capture_output=True, text=True, timeout=120)


def test_jobs_are_listed_shown_and_cancelled_by_their_owner_only(tmp_path):
    files = {f"d/{i:03d}.bin": os.urandom(100_000) for i in range(30)}
    archive = tar_gz(files)
    with (
        ArchiveServer() as archives,
        grid_server(tmp_path, "", "--allow-private-urls") as (database, url),
    ):
        archives.served.files["/d.tar.gz"] = archive
        archives.served.stall_after = len(archive) // 3
        owner, key = new_user(database)
        _, stranger = new_user(database)
        home = tmp_path / "laptop"
        made: dict[str, subprocess.CompletedProcess[str]] = {}

        def create() -> None:
            made["r"] = _grid(url, key, home, "datastore", "create", archives.url("/d.tar.gz"),
                              "--name", "d")  # fmt: skip

        asking = threading.Thread(target=create)
        asking.start()

        def running():  # asked over HTTP: cheaper than a CLI process per look
            jobs = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {key}"})
            return [j for j in jobs.json() if j["state"] == "running"]

        (job,) = wait_for(running)
        assert job["kind"] == "import" and job["payload"]["name"] == "d"
        r = _grid(url, key, home, "job", "list")
        assert r.returncode == 0 and f"{job['id']}" in r.stdout and "running" in r.stdout
        shown = _grid(url, key, home, "job", "show", str(job["id"]))
        assert shown.returncode == 0 and "import" in shown.stdout, shown

        # someone else's job is answered as if it did not exist
        other = _grid(url, stranger, tmp_path / "stranger", "job", "show", str(job["id"]))
        assert other.returncode == 3 and other.stderr.strip() == (
            f"grid: error: no job {job['id']} (`grid job list` shows them)"
        )
        assert _grid(url, stranger, tmp_path / "stranger", "job", "cancel", str(job["id"])
                     ).returncode == 3  # fmt: skip
        assert (
            json.loads(_grid(url, stranger, tmp_path / "s", "job", "list", "--json").stdout) == []
        )

        r = _grid(url, key, home, "job", "cancel", str(job["id"]))
        assert r.returncode == 0 and r.stdout.strip() == f"cancelled job {job['id']} (import)"
        time.sleep(3)  # the worker notices within CHECK_SECONDS (2 s)
        archives.served.stall_after = None
        archives.served.resume.set()  # the import goes on, sees the cancel at its next report
        asking.join(120)
        assert made["r"].returncode != 0
        assert "cancelled" in made["r"].stderr, made["r"].stderr

        def version_failed():
            path = f"{url}/v1/datastores/{owner}/d/versions"
            versions = httpx.get(path, headers={"Authorization": f"Bearer {key}"}).json()
            return [v for v in versions if v["status"] == "failed"]

        (failed,) = wait_for(version_failed)
        assert "cancelled" in failed["reason"]
        assert _grid(url, key, home, "datastore", "ls", "d:1").returncode == 4  # not readable

        again = _grid(url, key, home, "job", "cancel", str(job["id"]))
        assert again.returncode == 4 and "has ended already: cancelled" in again.stderr
        for bad in ("0", "999999"):
            r = _grid(url, key, home, "job", "show", bad)
            assert r.returncode == 3 and f"no job {bad}" in r.stderr
        r = _grid(url, key, home, "job", "show", "x")
        assert r.returncode == 2 and "Traceback" not in r.stderr

        # the same create again makes a version (the cancel left nothing in its way)
        r = _grid(url, key, home, "datastore", "create", archives.url("/d.tar.gz"), "--name", "d")
        assert r.returncode == 0, r.stderr
        r = _grid(url, key, home, "datastore", "verify", "d")
        assert r.returncode == 0, r.stderr
        states = [
            j["state"] for j in json.loads(_grid(url, key, home, "job", "list", "--json").stdout)
        ]
        assert states == ["succeeded", "cancelled"]
        text = httpx.get(f"{url}/metrics").text  # the jobs table, by kind and state
        assert 'grid_jobs{kind="import",state="succeeded"} 1.0' in text
        assert 'grid_jobs{kind="import",state="cancelled"} 1.0' in text


def test_an_embedded_installation_has_no_jobs(cli):
    r = cli("job", "list", "--json")
    assert r.code == 0 and json.loads(r.out) == []
    r = cli("job", "list")
    assert r.code == 0 and "no jobs" in r.err
    r = cli("job", "cancel", "7")
    assert r.code == 3 and "no job 7" in r.err
