"""download (materialise, resume, refuse) and verify (name the damaged files)."""

from __future__ import annotations

import json
import os

import pytest

import grid
from tests.service.test_create_roundtrip import source_tree


@pytest.fixture
def stored(any_client, mixed_tree):
    """One version of the mixed tree, through each client (embedded and team mode)."""
    client = any_client
    root, _files = mixed_tree
    client.create(str(root), "ds")
    return client, root


def test_download_reproduces_the_tree_with_modes_mtimes_and_links(stored, tmp_path):
    client, root = stored
    dest = tmp_path / "out"
    report = client.download("ds", 1, str(dest))
    assert report.files == sum(1 for v in source_tree(root).values() if v[0] == "file")
    assert source_tree(dest) == source_tree(root)
    assert not [p for p in source_tree(dest) if p.endswith(".grid-partial")]


def test_download_refuses_a_non_empty_folder_and_leaves_it_alone(stored, tmp_path):
    client, _ = stored
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    with pytest.raises(grid.UsageError, match="--resume"):
        client.download("ds", 1, str(dest))
    assert os.listdir(dest) == ["mine.txt"]
    client.download("ds", 1, str(dest), force=True)
    assert (dest / "mine.txt").read_text() == "keep"
    assert (dest / "val" / "labels.csv").exists()


def test_resume_writes_only_what_is_missing_or_incomplete(stored, tmp_path):
    client, root = stored
    dest = tmp_path / "out"
    first = client.download("ds", 1, str(dest))
    os.unlink(dest / "train" / "cat" / "0002.jpg")
    with open(dest / "big" / "blob.bin", "r+b") as f:
        f.truncate(1000)  # an interrupted write under the final name: size no longer matches
    again = client.download("ds", 1, str(dest), resume=True)
    assert again.files == 2 and again.skipped == first.files - 2
    assert source_tree(dest) == source_tree(root)


def test_verify_passes_then_names_exactly_the_damaged_file(client, mixed_tree, home):
    client.create(str(mixed_tree[0]), "ds")  # white box: damages the embedded store's files
    report = client.verify("ds", 1)
    assert report.ok and report.files > 5 and report.bytes > 6 << 20
    manifest_dir = home / "objects" / "local" / "packs"
    pack = next(os.path.join(d, f) for d, _, fs in os.walk(manifest_dir) for f in fs)
    with open(pack, "r+b") as f:  # first blob in the first pack: the first file in walk order
        f.seek(8 + 10)
        f.write(b"\xff\xfe\xfd")
    report = client.verify("ds", 1)
    assert not report.ok
    assert list(report.damaged) == ["big/blob.bin"]
    assert "does not match" in report.damaged["big/blob.bin"]


def test_cli_verify_and_download(home, mixed_tree, tmp_path):
    import subprocess

    from tests.e2e.conftest import GRID

    root, _ = mixed_tree
    env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0"}

    def run(*args):
        return subprocess.run([*GRID, *args], capture_output=True, text=True, env=env)

    assert run("datastore", "create", str(root)).returncode == 0
    r = run("datastore", "verify", "my_dataset:1")
    assert r.returncode == 0 and "all intact" in r.stdout
    assert json.loads(run("datastore", "verify", "my_dataset", "--json").stdout)["damaged"] == {}
    r = run("datastore", "download", "my_dataset", str(tmp_path / "out"))
    assert r.returncode == 0 and "files written" in r.stdout
    r = run("datastore", "download", "my_dataset", str(tmp_path / "out"))
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    r = run("datastore", "download", "my_dataset", str(tmp_path / "out"), "--resume")
    assert r.returncode == 0 and " 0 files written" in r.stdout
