"""Schedules a `grid server` keeps (`grid datastore schedule URL` when logged in): its worker
runs each turn, a version is made only when the source changed (its ETag, or for a server
that gives none, its tree), `--keep-last` deletes the oldest, and bad schedules are refused
when set, with one clear line, leaving the datastore as it was."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest
from sqlalchemy import update

from grid.catalog import Catalog
from grid.catalog.models import Schedule
from tests.archive_server import ArchiveServer, tar_gz
from tests.team import GRID, new_user, wait_for
from tests.web import grid_server

pytestmark = pytest.mark.slow


class Laptop:
    """The CLI of one logged-in user."""

    def __init__(self, url: str, key: str, home) -> None:
        self.env = {**os.environ, "GRID_URL": url, "GRID_API_KEY": key, "GRID_HOME": str(home)}
        self.url, self.auth = url, {"Authorization": f"Bearer {key}"}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*GRID, *args], env=self.env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip

    def json(self, *args: str):
        r = self(*args, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def versions(self, name: str) -> list[int]:
        return [v["number"] for v in self.json("datastore", "show", name)]

    def turns(self) -> list[dict]:
        """The schedule's turns, newest first (over HTTP: polled, and a CLI process per look
        would cost more than the turn)."""
        jobs = httpx.get(f"{self.url}/v1/jobs", headers=self.auth).json()
        return [j for j in jobs if j["kind"] == "schedule"]


def _next_turn(database: str, laptop: Laptop) -> dict:
    """Make every schedule due now; the turn that follows, once it ended."""
    before = len(laptop.turns())
    catalog = Catalog(database, owner=None)
    try:
        with catalog.transaction() as s:
            s.execute(update(Schedule).values(next_at=catalog.now()))
    finally:
        catalog.close()

    def ended():
        turns = laptop.turns()
        return len(turns) > before and turns[0]["state"] in ("succeeded", "failed") and turns[0]

    return wait_for(ended)


def test_a_server_schedule_makes_versions_only_when_the_source_changed(tmp_path):
    files = {f"d/{i:02d}.bin": os.urandom(30_000) for i in range(12)}
    with (
        ArchiveServer() as archives,
        grid_server(tmp_path, "", "--allow-private-urls") as (database, url),
    ):
        archives.served.files["/d.tar.gz"] = tar_gz(files)
        _, key = new_user(database)
        laptop = Laptop(url, key, tmp_path / "laptop")
        source = archives.url("/d.tar.gz")
        r = laptop("datastore", "schedule", source, "--name", "d", "--every", "1h",
                   "--keep-last", "2")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("scheduled d on the server: every 1h from http://")
        first = wait_for(lambda: [t for t in laptop.turns() if t["state"] == "succeeded"])[0]
        assert first["result"]["version"]["number"] == 1 and laptop.versions("d") == [1]

        # the same ETag: no import at all (one GET, whose body is not read), no version
        asked = len(archives.served.requests)
        turn = _next_turn(database, laptop)
        assert turn["state"] == "succeeded" and turn["result"]["unchanged"] is True
        assert len(archives.served.requests) == asked + 1 and laptop.versions("d") == [1]

        # a new ETag and new bytes: version 2; again: version 3, and retention drops 1
        for n, tag in ((2, '"v2"'), (3, '"v3"')):
            files[f"d/new-{n}.bin"] = os.urandom(10_000)
            archives.served.files["/d.tar.gz"] = tar_gz(files)
            archives.served.etag = tag
            turn = _next_turn(database, laptop)
            assert turn["result"]["version"]["number"] == n, turn
        assert turn["result"]["deleted"] == ["d:1"] and laptop.versions("d") == [2, 3]
        assert laptop("datastore", "verify", "d:3").returncode == 0
        got = laptop("datastore", "download", "d:3", str(tmp_path / "out"))
        assert got.returncode == 0, got.stderr
        for name, data in files.items():
            assert (tmp_path / "out" / name.removeprefix("d/")).read_bytes() == data

        # a server without validators: each turn imports, and an equal tree makes no version
        archives.served.etag = None
        turn = _next_turn(database, laptop)
        assert turn["result"]["unchanged"] is True and laptop.versions("d") == [2, 3]

        listed = laptop("datastore", "schedules")
        assert listed.returncode == 0 and "d\tevery 1h (server)\thttp://" in listed.stdout
        assert "last turn: unchanged" in listed.stdout
        (entry,) = laptop.json("datastore", "schedules")
        assert entry["source"] == source and entry["every_seconds"] == 3600
        r = laptop("datastore", "unschedule", "d")
        assert r.returncode == 0 and r.stdout.strip() == "unscheduled d on the server"
        assert laptop.json("datastore", "schedules") == []
        assert laptop("datastore", "unschedule", "d").returncode != 0


def test_bad_schedules_are_refused_when_set(team_server, tmp_path):
    database, url = team_server  # allows no private addresses and no S3 imports
    _, key = new_user(database)
    laptop = Laptop(url, key, tmp_path / "laptop")
    cases = [
        (["http://127.0.0.1:9/x.tar.gz", "--name", "x"], 2, "private"),
        (["s3://somebucket/p/", "--name", "x"], 2, "does not read s3://somebucket"),
        (["https://example.com/x.tar.gz", "--name", "x:3"], 2, "names a version"),
        (
            ["https://example.com/x.tar.gz", "--name", "x", "--every", "7m"],
            2,
            "cannot run every 7m",
        ),
        (["https://example.com/x.tar.gz", "--name", "../x"], 2, "invalid"),
    ]
    for args, code, words in cases:
        r = laptop("datastore", "schedule", *args)
        assert r.returncode == code, (args, r.stderr)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert laptop.json("datastore", "schedules") == []
    assert laptop.json("job", "list") == []
