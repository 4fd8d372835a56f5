"""Leases on versions being created (issue 11): a create that crashed on another host is
resumable once its lease lapses (not before), and a create that lost its lease never marks
the version it lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

import grid
from grid.catalog import Catalog
from grid.errors import ConflictError
from grid.records import Lease
from tests.e2e.conftest import GRID

pytestmark = pytest.mark.slow  # waits for leases to lapse

LEASE = 2  # seconds


def _packs(home) -> int:
    return sum(len(fs) for d, _, fs in os.walk(home / "objects") if "/packs/" in d)


def _source(tmp_path, files: int = 200):
    rng = random.Random(5)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(files):
        (src / f"{i:03d}.bin").write_bytes(rng.randbytes(rng.randrange(100_000, 400_000)))
    return src


def _start(home, src, host: str, lease: float = LEASE) -> subprocess.Popen:
    env = {**os.environ, "GRID_HOME": str(home), "GRID_HOST_ID": host}
    env.update(GRID_FSYNC="1", GRID_LEASE_SECONDS=str(lease))
    return subprocess.Popen(
        [*GRID, "datastore", "create", str(src)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_packs(home, p: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while _packs(home) == 0 and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def test_a_crash_on_another_host_is_resumed_once_its_lease_lapses(home, tmp_path):
    src = _source(tmp_path)
    # host-a's lease outlasts host-b's whole create below, on a slow machine too
    p = _start(home, src, "host-a", lease=15)
    _wait_for_packs(home, p)
    p.kill()
    p.wait()
    with grid.Client(str(home)) as c:
        v = c.version("src", 1)
    if v.status == "succeeded":
        pytest.skip("the create finished before the kill")
    assert v.host == "host-a" and v.lease_expires_at is not None

    # host-b cannot see host-a's processes: while the lease runs, host-a's create counts as
    # running, and a create of the same source makes a version of its own
    b = _start(home, src, "host-b")
    assert b.wait(120) == 0, b.stderr.read() if b.stderr else ""
    with grid.Client(str(home)) as c:
        assert [(v.number, v.status) for v in c.versions("src")] == [
            (1, "uploading"),
            (2, "succeeded"),
        ]
    lapse = v.lease_expires_at.timestamp() - time.time()
    time.sleep(max(0.0, lapse) + 0.5)
    r = _start(home, src, "host-b")
    assert r.wait(120) == 0
    assert "resuming src:1" in (r.stderr.read() if r.stderr else "")
    with grid.Client(str(home)) as c:
        assert [v.status for v in c.versions("src")] == ["succeeded", "succeeded"]
        want = {f.name: f.read_bytes() for f in src.iterdir()}
        assert dict(c.iter_files("src", 1)) == want
        assert c.version("src", 1).host == "host-b"


def test_a_create_that_lost_its_lease_never_marks_the_version(home, tmp_path):
    """A create stopped (SIGSTOP: a laptop lid, a frozen VM) past its lease is taken over by
    another; woken up, the first one fails with one line and leaves the version alone."""
    src = _source(tmp_path, files=300)
    p = _start(home, src, "host-a")
    _wait_for_packs(home, p)
    p.send_signal(signal.SIGSTOP)
    try:
        time.sleep(LEASE + 0.5)
        b = _start(home, src, "host-b")
        assert b.wait(120) == 0
        assert "resuming src:1" in (b.stderr.read() if b.stderr else "")
    finally:
        p.send_signal(signal.SIGCONT)
    assert p.wait(120) != 0
    err = p.stderr.read() if p.stderr else ""
    assert "taken over" in err and len(err.strip().splitlines()) == 1, err
    with grid.Client(str(home)) as c:
        v = c.version("src", 1)
        assert (v.status, v.host) == ("succeeded", "host-b")
        assert not c.verify("src", 1).damaged
        assert [x.number for x in c.versions("src")] == [1]


def test_catalog_status_changes_need_the_lease(tmp_path):
    cat = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    mine, theirs = Lease("a", 1, 60), Lease("b", 2, 60)
    v = cat.new_version("d", "/src", "m1", mine)
    assert cat.renew("d", v.number, mine)
    assert not cat.renew("d", v.number, theirs)
    with pytest.raises(ConflictError):
        cat.set_status("d", v.number, "succeeded", lease=theirs)
    assert cat.version("d", v.number).status == "uploading"
    cat.set_status("d", v.number, "failed", reason="x", lease=mine)
    assert not cat.renew("d", v.number, mine)  # finished: nothing left to hold
    assert len(cat.catalog_id) == 32
    assert Catalog(f"sqlite:///{tmp_path / 'c.db'}").catalog_id == cat.catalog_id
    assert Catalog(f"sqlite:///{tmp_path / 'd.db'}").catalog_id != cat.catalog_id


def test_a_create_that_fails_as_it_takes_its_version_stops_renewing(home, tmp_path):
    """on_held (a remote client learning its packs) failing, e.g. with the database down,
    fails the create and leaves no lease thread renewing through a closed client."""
    import dataclasses
    import threading

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")

    def unreachable():
        raise grid.StorageError("the catalog database cannot be reached; try again")

    with grid.Client(str(home), fsync=False) as c:
        c._ctx = dataclasses.replace(c._ctx, on_held=unreachable)
        with pytest.raises(grid.StorageError, match="cannot be reached"):
            c.create(str(src), "ds")
        assert [v.status for v in c.versions("ds")] == ["failed"]
    assert not [t for t in threading.enumerate() if t.name == "grid-lease"]
