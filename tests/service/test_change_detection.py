"""Re-runs read only what changed: the file state recognises unchanged files by (size, mtime,
inode, ctime), never at the cost of a wrong version."""

from __future__ import annotations

import os
import random

import pytest

from grid.sources.local import LocalSource
from tests.conftest import count_opens


@pytest.fixture
def opened(monkeypatch):
    """Every file the local source opens for reading, by path."""
    return count_opens(monkeypatch, LocalSource)


def _tree(root, n: int = 60, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(n):
        d = root / f"d{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:03d}.bin").write_bytes(rng.randbytes(rng.randrange(1, 40_000)))
    (root / "big.bin").write_bytes(rng.randbytes(3 << 20))  # several chunks
    old = 1_600_000_000
    for dirpath, _, names in os.walk(root):
        for name in names:  # older than the racy window, like data that has settled
            os.utime(os.path.join(dirpath, name), (old, old))


def _pack_bytes(home) -> int:
    return sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(home / "objects")
        for f in fs
        if "/packs/" in d
    )


def _content(client, name, number):
    return dict(client.iter_files(name, number))


def test_unchanged_rerun_reads_no_file(any_client, tmp_path, opened):
    client = any_client
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), name="d")
    assert len(opened) == 61
    opened.clear()
    v2 = client.create(str(src), name="d")
    assert opened == []
    assert v2.number == 2 and v2.files == 61
    assert _content(client, "d", 2) == _content(client, "d", 1)


def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen(any_client, tmp_path, opened):
    client = any_client
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), name="d")
    target = src / "d1" / "f001.bin"
    st = target.stat()
    new = os.urandom(st.st_size)
    target.write_bytes(new)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # forge the mtime back: ctime moves
    opened.clear()
    client.create(str(src), name="d")
    assert opened == [str(target)]
    assert client.read_bytes("d", 2, "d1/f001.bin") == new


def test_rehash_reads_everything(any_client, tmp_path, opened):
    client = any_client
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), name="d")
    opened.clear()
    client.create(str(src), name="d", rehash=True)
    assert len(opened) == 61


def test_remembered_blobs_gone_from_the_store_are_read_again(client, home, tmp_path, opened):
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), name="d")
    expected = _content(client, "d", 1)
    client.delete("d")
    for d, _, fs in os.walk(home / "objects"):
        for f in fs:
            if "/packs/" in d:
                os.unlink(os.path.join(d, f))
    opened.clear()
    client.create(str(src), name="d")
    assert len(opened) == 61
    assert _content(client, "d", 2) == expected


def test_one_percent_change_stores_about_one_percent(client, home, tmp_path):
    src = tmp_path / "src"
    _tree(src, n=200)
    client.create(str(src), name="d")
    before = _pack_bytes(home)
    files = sorted(p for p in src.rglob("f*.bin"))
    files[0].write_bytes(os.urandom(30_000))  # modified
    files[1].unlink()  # deleted
    (src / "d0" / "new.bin").write_bytes(os.urandom(20_000))  # added
    big = bytearray((src / "big.bin").read_bytes())
    big[1_000_000:1_000_010] = b"0123456789"  # a small edit inside a multi-chunk file
    (src / "big.bin").write_bytes(bytes(big))
    client.create(str(src), name="d")
    grown = _pack_bytes(home) - before
    # new bytes: 50,000 plus the one or two CDC chunks (<= 4 MiB each) around the edit
    assert 50_000 <= grown <= 50_000 + 2 * (1 << 20) + 4096
    assert grown < 0.5 * (3 << 20)  # far less than the big file itself
    got = _content(client, "d", 2)
    assert got["big.bin"] == bytes(big)
    assert files[1].relative_to(src).as_posix() not in got and "d0/new.bin" in got
