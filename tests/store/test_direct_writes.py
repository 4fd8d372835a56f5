"""Durable puts write with O_DIRECT through an aligned buffer: every size lands byte for byte
(block and buffer edges, the tail short of a block), a filesystem that refuses O_DIRECT gets
buffered writes instead, and a failing write leaves no object and no temporary file."""

from __future__ import annotations

import errno
import os

import pytest

from grid.errors import NoSpaceError
from grid.objects import direct_io
from grid.objects.local import LocalDirectory
from tests.conftest import small_tmpfs

CHUNK, ALIGN = direct_io.CHUNK, direct_io.ALIGN
SIZES = [1, ALIGN - 1, ALIGN, ALIGN + 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + ALIGN + 7]


def _parts(total: int, seed: int) -> list[bytes]:
    """``total`` random bytes in parts of uneven sizes (as a pack's payloads are)."""
    data = os.urandom(total)
    cuts, at, step = [], 0, 1 + seed
    while at < total:
        cuts.append(data[at : at + step])
        at += step
        step = step * 7 % 100_003 + 1
    return cuts


@pytest.mark.parametrize("size", SIZES)
def test_every_size_lands_byte_for_byte(tmp_path, size):
    store = LocalDirectory(tmp_path / "objects")
    parts = _parts(size, size % 13)
    assert store.put("packs/ab/x", parts) == size
    assert store._direct  # /tmp is a disk filesystem: it took O_DIRECT
    assert store.get("packs/ab/x") == b"".join(parts)
    assert os.listdir(tmp_path / "objects" / "packs" / "ab") == ["x"]


def test_views_of_any_buffer_kind_are_written(tmp_path):
    store = LocalDirectory(tmp_path / "objects")
    raw = os.urandom(3 * ALIGN + 5)
    parts = [memoryview(raw)[:100], bytearray(raw[100:5000]), raw[5000:]]
    store.put("packs/ab/y", parts)
    assert store.get("packs/ab/y") == raw


def test_a_filesystem_without_o_direct_gets_buffered_writes(tmp_path, monkeypatch):
    store = LocalDirectory(tmp_path / "objects")
    real_open, asked = os.open, []

    def open_(path, flags, mode=0o777):  # as a filesystem without O_DIRECT answers
        if flags & os.O_DIRECT:
            asked.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(direct_io.os, "open", open_)
    parts = _parts(CHUNK + 3, 1)
    assert store.put("packs/ab/z", parts) == CHUNK + 3
    assert store.put("packs/ab/w", [b"w" * 10]) == 10
    monkeypatch.undo()
    assert len(asked) == 1 and not store._direct  # refused once; not asked again
    assert store.get("packs/ab/z") == b"".join(parts)
    assert store.get("packs/ab/w") == b"w" * 10


def test_tmpfs_takes_o_direct_too(tmp_path):
    with small_tmpfs(tmp_path / "tmpfs", "64m") as mnt:
        store = LocalDirectory(os.path.join(mnt, "objects"))
        parts = _parts(CHUNK + 3, 1)
        assert store.put("packs/ab/z", parts) == CHUNK + 3
        assert store.get("packs/ab/z") == b"".join(parts)
        store.close()


def test_writes_refused_after_the_open_fall_back_to_buffered(tmp_path, monkeypatch):
    store = LocalDirectory(tmp_path / "objects")
    real_write = os.write
    refused = []

    def write(fd, data):
        if not refused:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(direct_io.os, "write", write)
    parts = _parts(2 * ALIGN + 9, 3)
    assert store.put("packs/ab/v", parts) == 2 * ALIGN + 9
    monkeypatch.undo()
    assert refused and not store._direct
    assert store.get("packs/ab/v") == b"".join(parts)
    assert os.listdir(tmp_path / "objects" / "packs" / "ab") == ["v"]


def test_a_short_write_goes_on_without_o_direct(tmp_path, monkeypatch):
    store = LocalDirectory(tmp_path / "objects")
    real_write = os.write
    calls = []

    def write(fd, data):  # the first write stops half way, as on a nearly full disk
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[: ALIGN // 2 * 3 // 2])
        return real_write(fd, data)

    monkeypatch.setattr(direct_io.os, "write", write)
    parts = _parts(CHUNK + 2 * ALIGN, 5)
    assert store.put("packs/ab/s", parts) == CHUNK + 2 * ALIGN
    monkeypatch.undo()
    assert store.get("packs/ab/s") == b"".join(parts)


def test_a_full_disk_leaves_no_object_and_no_temporary_file(tmp_path, monkeypatch):
    store = LocalDirectory(tmp_path / "objects")
    monkeypatch.setattr(
        direct_io.os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full"))
    )
    with pytest.raises(NoSpaceError):
        store.put("packs/ab/f", [b"f" * (ALIGN * 3)])
    monkeypatch.undo()
    assert os.listdir(tmp_path / "objects" / "packs" / "ab") == []
    assert store._direct
