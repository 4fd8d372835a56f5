"""Reading without a mount: Client.open (seekable file object) and Client.iter_files."""

from __future__ import annotations

import io
import os
import random

import pytest

import grid


@pytest.fixture
def stored(any_client, mixed_tree):
    """One version of the mixed tree, through each client (embedded and team mode)."""
    client = any_client
    root, files = mixed_tree
    client.create(str(root), "ds")
    return client, files


def test_open_reads_whole_files_and_follows_links(stored):
    client, files = stored
    for path, data in files.items():
        with client.open("ds", 1, path) as f:
            assert f.read() == data, path
    with client.open("ds", None, "link_to_cat") as f:
        assert f.read() == files["train/cat/0001.jpg"]


def test_random_offset_reads_match_the_source(stored):
    client, files = stored
    data = files["big/blob.bin"]  # several chunks
    rng = random.Random(1)
    with client.open("ds", 1, "big/blob.bin") as f:
        assert f.seekable() and f.seek(0, io.SEEK_END) == len(data)
        for _ in range(200):
            offset = rng.randrange(len(data))
            length = rng.choice([1, 100, 70_000, 3 << 20])
            f.seek(offset)
            assert f.read(length) == data[offset : offset + length]
            assert f.tell() == min(offset + length, len(data))
        f.seek(-10, io.SEEK_END)
        assert f.read() == data[-10:]
        f.seek(len(data) + 5)
        assert f.read(10) == b""


def test_open_is_read_only_and_refuses_directories(stored):
    client, _ = stored
    with client.open("ds", 1, "val/labels.csv") as f:
        assert not f.writable()
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"x")
    with pytest.raises(grid.PathNotFoundError):
        client.open("ds", 1, "train")
    with pytest.raises(grid.PathNotFoundError):
        client.open("ds", 1, "nope.txt")


def test_lines_and_text_wrappers_work(stored):
    client, files = stored
    with client.open("ds", 1, "val/labels.csv") as f:
        lines = io.TextIOWrapper(f).readlines()
    assert "".join(lines).encode() == files["val/labels.csv"]


def test_iter_files_yields_every_file_once_in_storage_order(stored):
    client, files = stored
    got = list(client.iter_files("ds"))
    assert dict(got) == files
    paths = [p for p, _ in got]
    assert len(paths) == len(set(paths))
    assert paths.index("big/blob.bin") < paths.index("train/cat/0001.jpg")  # walk order


def test_iter_files_prefix(stored):
    client, files = stored
    got = dict(client.iter_files("ds", 1, prefix="train/cat"))
    assert got == {p: d for p, d in files.items() if p.startswith("train/cat/")}
    assert dict(client.iter_files("ds", 1, prefix="train/ca")) == {}


def test_corruption_surfaces_through_open_and_iter_files(client, tmp_path, home):
    src = tmp_path / "d"
    src.mkdir()
    for i in range(20):
        (src / f"{i:02d}.bin").write_bytes(os.urandom(20_000))
    client.create(str(src), "d")
    packs = [
        os.path.join(d, f) for d, _, fs in os.walk(home / "objects") for f in fs if "packs" in d
    ]
    with open(packs[0], "r+b") as f:
        f.seek(20_000 * 5 + 500)  # inside the sixth file
        f.write(b"\0\0\0\0")
    with pytest.raises(grid.IntegrityError):
        list(client.iter_files("d"))
    with client.open("d", 1, "00.bin") as f:
        assert f.read() == (src / "00.bin").read_bytes()
    with pytest.raises(grid.IntegrityError), client.open("d", 1, "05.bin") as f:
        f.read()
