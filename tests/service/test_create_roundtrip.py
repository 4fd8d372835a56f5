"""Create from a folder and read every byte, link, mode and empty folder back."""

from __future__ import annotations

import os
import stat

import pytest

import grid


def source_tree(root) -> dict[str, tuple]:
    """path -> (kind, mode, mtime_ns, content or link target) of every entry under root."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", st.st_mode, st.st_mtime_ns, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode, st.st_mtime_ns, None)
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", st.st_mode, st.st_mtime_ns, f.read())
    return out


def stored_tree(client, name, version) -> dict[str, tuple]:
    out = {}
    pending = [""]
    while pending:
        folder = pending.pop()
        for f in client.ls(name, version, folder):
            if f.kind == "dir":
                pending.append(f.path)
                out[f.path] = ("dir", f.mode, f.mtime_ns, None)
            elif f.kind == "symlink":
                out[f.path] = ("symlink", f.mode, f.mtime_ns, f.target)
            else:
                out[f.path] = ("file", f.mode, f.mtime_ns, client.read_bytes(name, version, f.path))
    return out


def test_every_byte_link_mode_and_empty_folder_round_trips(any_client, mixed_tree):
    client = any_client
    root, _files = mixed_tree
    v = client.create(str(root))
    assert (v.datastore, v.number, v.status) == ("my_dataset", 1, "succeeded")
    expected = source_tree(root)
    got = stored_tree(client, "my_dataset", 1)
    assert got.keys() == expected.keys()
    for path, want in expected.items():
        assert got[path] == want, path
    assert v.files == sum(1 for k in expected.values() if k[0] == "file")
    assert v.size == sum(len(k[3]) for k in expected.values() if k[0] == "file")


def test_folder_contents_are_the_root(any_client, mixed_tree):
    client = any_client
    root, files = mixed_tree
    client.create(str(root), "cats")
    top = {f.path for f in client.ls("cats")}
    assert "train" in top and "my_dataset" not in top
    assert client.read_bytes("cats", None, "train/cat/0001.jpg") == files["train/cat/0001.jpg"]


def test_large_file_spans_several_chunks_and_packs(client, mixed_tree, home):
    root, files = mixed_tree
    v = client.create(str(root), "ds")
    reader = client._ctx.store.open_manifest(v.manifest_id)  # white box: the blob list
    entry = reader.stat("big/blob.bin")
    assert len(reader.blobs(entry)) >= 4
    assert client.read_bytes("ds", 1, "big/blob.bin") == files["big/blob.bin"]


def test_symlink_is_followed_inside_the_version_by_cat(any_client, mixed_tree):
    client = any_client
    root, files = mixed_tree
    client.create(str(root), "ds")
    assert client.read_bytes("ds", 1, "link_to_cat") == files["train/cat/0001.jpg"]
    assert client.read_bytes("ds", 1, "train/link_to_val/labels.csv") == files["val/labels.csv"]
    with pytest.raises(grid.PathNotFoundError):
        client.read_bytes("ds", 1, "dangling")


def test_single_file_source(any_client, tmp_path):
    client = any_client
    f = tmp_path / "weights.bin"
    f.write_bytes(os.urandom(3000))
    v = client.create(str(f))
    assert v.datastore == "weights.bin" and v.files == 1
    assert [x.path for x in client.ls("weights.bin")] == ["weights.bin"]
    assert client.read_bytes("weights.bin", 1, "weights.bin") == f.read_bytes()


def test_fifo_is_skipped_with_a_warning(any_client, tmp_path):
    client = any_client
    root = tmp_path / "t"
    root.mkdir()
    (root / "a.txt").write_text("a")
    os.mkfifo(root / "pipe")
    warnings = []
    client.create(str(root), "t", warn=warnings.append)
    assert [f.path for f in client.ls("t")] == ["a.txt"]
    assert any("pipe" in w for w in warnings)


def test_versions_count_up_and_stay_readable(any_client, tmp_path):
    client = any_client
    root = tmp_path / "d"
    root.mkdir()
    contents = []
    for i in range(3):
        (root / "f.txt").write_text(f"version {i}")
        contents.append(client.create(str(root), "d").number)
    assert contents == [1, 2, 3]
    for i, n in enumerate(contents):
        assert client.read_bytes("d", n, "f.txt") == f"version {i}".encode()
    assert client.read_bytes("d", None, "f.txt") == b"version 2"


def test_head_revision_constant_matches_the_migrations():
    from alembic.script import ScriptDirectory

    from grid.catalog.catalog import _MIGRATIONS, HEAD_REVISION

    assert ScriptDirectory(_MIGRATIONS).get_current_head() == HEAD_REVISION
