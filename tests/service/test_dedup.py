"""Dedup accounting: what a second copy of the same data costs."""

from __future__ import annotations

import os

import grid


def _pack_bytes(home) -> int:
    root = os.path.join(home, "objects", "local", "packs")
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def test_second_datastore_from_the_same_folder_adds_almost_nothing(client, mixed_tree, home):
    root, _ = mixed_tree
    first = client.create(str(root), "a")
    packs_after_first = _pack_bytes(home)
    second = client.create(str(root), "b")
    assert _pack_bytes(home) == packs_after_first  # not one new pack byte
    assert second.size == first.size
    # only the manifest is new: a few tens of kB against megabytes of data
    assert second.stored_bytes < 0.02 * first.stored_bytes
    assert client.read_bytes("b", 1, "big/blob.bin") == client.read_bytes("a", 1, "big/blob.bin")


def test_identical_files_inside_one_tree_are_stored_once(client, tmp_path, home):
    root = tmp_path / "t"
    root.mkdir()
    payload = os.urandom(300_000)
    for i in range(10):
        (root / f"copy{i}.bin").write_bytes(payload)
    v = client.create(str(root))
    assert v.size == 10 * len(payload)
    assert len(payload) <= _pack_bytes(home) < 1.1 * len(payload)


def test_compressible_data_is_stored_smaller(client, tmp_path, home):
    root = tmp_path / "csv"
    root.mkdir()
    (root / "t.csv").write_bytes(b"".join(b"%d,apple,%d\n" % (i, i * 7) for i in range(300_000)))
    v = client.create(str(root))
    assert _pack_bytes(home) < v.size / 2


def test_dedup_is_scoped_to_the_owner(home, mixed_tree):
    root, _ = mixed_tree
    with grid.Client(str(home), owner="alice") as alice:
        alice.create(str(root), "x")
    with grid.Client(str(home), owner="bob") as bob:
        v = bob.create(str(root), "x")
        assert v.stored_bytes > 1_000_000  # bob's store holds its own copy
        assert [d.name for d in bob.list()] == ["x"]
