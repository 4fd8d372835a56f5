"""A full disk under GRID_HOME: a clear error, a failed version, earlier versions intact."""

from __future__ import annotations

import os

import pytest

import grid
from tests.conftest import small_tmpfs


@pytest.fixture
def small_disk(tmp_path):
    with small_tmpfs(tmp_path / "small-disk", "12m") as mnt:
        yield mnt


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
