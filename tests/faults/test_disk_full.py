"""A full disk under GRID_HOME: a clear error, a failed version, earlier versions intact."""

from __future__ import annotations

import os
import subprocess

import pytest

import grid


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_the_version_and_keeps_the_others(small_disk, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("still here")
    big = tmp_path / "big"
    big.mkdir()
    for i in range(40):
        (big / f"{i}.bin").write_bytes(os.urandom(1 << 20))
    home = str(small_disk / "home")
    with grid.Client(home, fsync=False) as c:
        c.create(str(small), "ds")
        with pytest.raises(grid.NoSpaceError) as info:
            c.create(str(big), "ds")
        assert "no space" in str(info.value)
        versions = c.versions("ds")
        assert versions[0].status == "succeeded"
        assert versions[1].status != "succeeded"
        assert versions[1].status == "failed"
        assert c.read_bytes("ds", 1, "a.txt") == b"still here"
        with pytest.raises(grid.VersionNotReadyError):
            c.ls("ds", 2)
