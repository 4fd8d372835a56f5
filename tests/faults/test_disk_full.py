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


def test_a_full_disk_under_the_blob_index_is_a_no_space_error(small_disk):
    """Where the disk fills while the index, not a pack, is written (a CI run met this): the
    same NoSpaceError, and the rows already there still read."""
    from grid.store.index import BlobIndex

    index = BlobIndex(str(small_disk / "index.sqlite"))
    index.lease("before", ["p0"])
    with open(small_disk / "ballast", "wb") as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * (1 << 16))
            f.flush()
    with pytest.raises(grid.NoSpaceError) as info:
        index.lease("v1", (f"pack-{i:06d}-{'x' * 60}" for i in range(50_000)))
    assert "no space" in str(info.value) and "blob index" in str(info.value)
    assert index.leased("before") == [("before", "p0")]
    assert index.leased("v1") == []
