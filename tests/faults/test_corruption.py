"""Damaged packs are detected on read: an error naming the blob, never wrong bytes."""

from __future__ import annotations

import os
import subprocess

import pytest

import grid
from tests.e2e.conftest import GRID


def _packs(home):
    root = os.path.join(home, "objects", "local", "packs")
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]


def _source(tmp_path, data: bytes):
    src = tmp_path / "d"
    src.mkdir()
    (src / "a.bin").write_bytes(data)
    return src


def test_flipped_byte_is_an_integrity_error_and_cat_prints_nothing(home, tmp_path):
    src = _source(tmp_path, os.urandom(50_000))
    with grid.Client(str(home), fsync=False) as c:
        c.create(str(src), "d")
    (pack,) = _packs(home)
    with open(pack, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with grid.Client(str(home)) as c, pytest.raises(grid.IntegrityError, match="does not match"):
        c.read_bytes("d", 1, "a.bin")
    p = subprocess.run(
        [*GRID, "datastore", "cat", "d:1", "a.bin"],
        capture_output=True,
        env={**os.environ, "GRID_HOME": str(home)},
    )
    assert p.returncode == 6
    assert p.stdout == b""
    assert b"does not match its id" in p.stderr


def test_missing_pack_is_an_integrity_error(home, tmp_path):
    src = _source(tmp_path, b"x" * 1000)
    with grid.Client(str(home), fsync=False) as c:
        c.create(str(src), "d")
        for pack in _packs(home):
            os.unlink(pack)
        with pytest.raises(grid.IntegrityError, match="missing"):
            c.read_bytes("d", 1, "a.bin")


def test_a_missing_pack_is_stored_again_by_the_next_create(home, tmp_path):
    src = _source(tmp_path, os.urandom(10_000))
    with grid.Client(str(home), fsync=False) as c:
        c.create(str(src), "d")
        for pack in _packs(home):
            os.unlink(pack)
        c.create(str(src), "d")  # the index still lists the blob; its pack is gone
        assert c.read_bytes("d", 2, "a.bin") == (src / "a.bin").read_bytes()


def test_a_damaged_manifest_is_an_integrity_error(home, tmp_path):
    src = _source(tmp_path, b"x" * 1000)
    with grid.Client(str(home), fsync=False) as c:
        v = c.create(str(src), "d")
    root = os.path.join(home, "objects", "local", "manifests")
    (obj,) = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    with open(obj, "r+b") as f:
        f.truncate(os.path.getsize(obj) // 2)
    cached = os.path.join(home, "cache", "local", "manifests", v.manifest_id)
    if os.path.exists(cached):
        os.unlink(cached)  # as on a machine that has not read this version yet
    with grid.Client(str(home)) as c, pytest.raises(grid.IntegrityError, match="manifest"):
        c.read_bytes("d", 1, "a.bin")
    assert not os.path.exists(cached)  # nothing half-unpacked is left to be trusted later
