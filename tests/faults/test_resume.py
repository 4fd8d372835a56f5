"""kill -9 in the middle of a create, at several points: the re-run finishes the same version
number, correct byte for byte, uploading less than the whole."""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest

import grid
from tests.e2e.conftest import GRID

pytestmark = pytest.mark.slow  # kills creates at random moments and resumes them


def _pack_bytes(home) -> int:
    return sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(home / "objects")
        for f in fs
        if "/packs/" in d and not f.endswith(".tmp")  # whole packs only
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_then_rerun_finishes_the_same_version(home, tmp_path, seed):
    rng = random.Random(seed)
    src = tmp_path / "src"
    for i in range(300):
        d = src / f"d{i % 8}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:03d}.bin").write_bytes(rng.randbytes(rng.randrange(200_000, 800_000)))
    total = sum(f.stat().st_size for f in src.rglob("*.bin"))
    env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "1"}
    with grid.Client(str(home)) as c:  # an earlier version that must stay untouched
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "x").write_text("x")
        c.create(str(tmp_path / "other"), name="src")
    baseline = _pack_bytes(home)
    p = subprocess.Popen(
        [*GRID, "datastore", "create", str(src)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60  # wait until packs are being written, then a random delay
    while _pack_bytes(home) == baseline and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.15))
    p.kill()
    p.wait()
    with grid.Client(str(home)) as c:
        v = c.version("src", 2)
    if v.status == "succeeded":
        pytest.skip("the create finished before the kill")
    assert v.status in ("uploading", "processing", "optimizing")
    stored_before = _pack_bytes(home)
    r = subprocess.run(
        [*GRID, "datastore", "create", str(src)], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "resuming src:2" in r.stderr
    uploaded = _pack_bytes(home) - stored_before
    assert uploaded < total
    with grid.Client(str(home)) as c:
        assert [(v.number, v.status) for v in c.versions("src")] == [
            (1, "succeeded"),
            (2, "succeeded"),
        ]
        assert c.read_bytes("src", 1, "x") == b"x"
        got = dict(c.iter_files("src", 2))
        want = {f.relative_to(src).as_posix(): f.read_bytes() for f in src.rglob("*.bin")}
        assert got == want
        assert not c.verify("src", 2).damaged
