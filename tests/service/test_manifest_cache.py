"""A create leaves its finished manifest in the reading cache: the version's first reader on
this machine opens it at once instead of unpacking the stored (compressed) copy, and the
copy it reads is the one stored."""

from __future__ import annotations

import os

import pytest

import grid
import grid.store.manifest_store as manifest_store


def test_the_first_read_after_a_create_does_not_unpack_the_manifest(client, tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.txt").write_text("x")
    info = client.create(str(src), "m")

    def unpack(*_args, **_kwargs):
        raise AssertionError("the manifest was unpacked again")

    monkeypatch.setattr(manifest_store, "unpack", unpack)
    assert [f.path for f in client.ls("m", 1, "a")] == ["a/x.txt"]
    assert client.read_bytes("m", 1, "a/x.txt") == b"x"
    assert client.verify("m", 1).ok
    monkeypatch.undo()
    # the cached copy is byte for byte what the stored object unpacks to
    cached = os.path.join(client.home, "cache")
    found = [
        os.path.join(d, f) for d, _, fs in os.walk(cached) for f in fs if f == info.manifest_id
    ]
    assert len(found) == 1
    with open(found[0], "rb") as f:
        kept = f.read()
    os.unlink(found[0])
    with grid.Client(client.home) as fresh:  # unpacks from the store again
        assert [f.path for f in fresh.ls("m", 1, "a")] == ["a/x.txt"]
    with open(found[0], "rb") as f:
        assert f.read() == kept


def test_a_manifest_written_elsewhere_is_unpacked_on_first_read(client, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "y").write_text("y")
    monkeypatch.setattr(manifest_store.os, "replace", _refuse_cross_device)
    client.create(str(src), "n")  # the cache could not take the file: nothing breaks
    monkeypatch.undo()
    assert client.read_bytes("n", 1, "y") == b"y"


def _refuse_cross_device(src, dst):
    if "/manifests/" in str(dst) and not str(src).startswith(os.path.dirname(str(dst))):
        raise OSError(18, "Invalid cross-device link")
    return os.rename(src, dst)


@pytest.fixture
def client(home):
    with grid.Client(str(home), fsync=False) as c:
        c.home = str(home)
        yield c
