"""Every stored format version stays readable: a store written by format 1.0 is kept here."""

from __future__ import annotations

import tarfile
from pathlib import Path

import grid
from tests.testdata.golden_tree import golden_files

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
