"""Every stored format version stays readable: stores written by formats 1.0, 1.2 and 2.0 are
kept here."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

import grid
from tests.testdata.golden_tree import golden_files, golden_files_v2

TESTDATA = Path(__file__).parent.parent / "testdata"


def test_format_1_0_store_reads_back_byte_for_byte(tmp_path):
    with tarfile.open(TESTDATA / "store-format-1.0.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    with grid.Client(str(tmp_path / "home"), fsync=False) as c:
        (v,) = c.versions("golden")
        assert v.status == "succeeded"
        for path, data in golden_files().items():
            assert c.read_bytes("golden", 1, path) == data, path
        assert c.read_bytes("golden", 1, "log-link") == golden_files()["data/log.txt"]


@pytest.mark.parametrize("fmt", ["1.2", "2.0"])
def test_golden_stores_read_back_byte_for_byte(tmp_path, fmt):
    """Two versions each (``tests/testdata/make_golden.py``); in 2.0 the second manifest is a
    delta against the first, rebuilt here from the stored objects alone (no cache)."""
    with tarfile.open(TESTDATA / f"store-format-{fmt}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    with grid.Client(str(tmp_path / "home"), fsync=False) as c:
        v1, v2 = c.versions("golden")
        store = c._ctx.store  # white box: how the second manifest is stored
        assert store.manifest_bases(v2.manifest_id) == ([v1.manifest_id] if fmt == "2.0" else [])
        for number, files in ((1, golden_files()), (2, golden_files_v2())):
            assert dict(c.iter_files("golden", number)) == files
            assert c.verify("golden", number).ok
        assert c.read_bytes("golden", 2, "log-link") == golden_files()["data/log.txt"]
        assert {ch.path for ch in c.diff("golden", 1, 2).added} == {"data/added.txt"}
