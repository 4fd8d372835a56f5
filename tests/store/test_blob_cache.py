"""The on-disk blob cache: bounded, least recently used out first, shared by processes, and
filled only with verified bytes."""

from __future__ import annotations

import multiprocessing
import os

import pytest

import grid
from grid.errors import IntegrityError
from grid.ids import digest_of
from grid.store.cache import BlobCache

KIB = 1024


def _blob(i: int, size: int = 100 * KIB) -> tuple[bytes, bytes]:
    data = (b"%08d" % i) * (size // 8)
    return digest_of(data), data


def _files_on_disk(root) -> dict[str, int]:
    return {
        f: os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(root)
        for f in fs
        if d != str(root)
    }


def test_hit_miss_and_size(tmp_path):
    cache = BlobCache(str(tmp_path / "c"), 10 << 20)
    digest, data = _blob(1)
    assert cache.get(digest, len(data)) is None
    cache.put(digest, data)
    assert cache.get(digest, len(data)) == data
    assert cache.get(digest, len(data) + 1) is None  # a size mismatch is a miss, not a short read
    cache.flush()
    assert cache.size() == len(data)
    cache.put(digest, data)  # again: counted once
    cache.flush()
    assert cache.size() == len(data)
    cache.close()


def test_eviction_keeps_the_bound_and_drops_least_recently_used_first(tmp_path):
    root = str(tmp_path / "c")
    cache = BlobCache(root, 1000 * KIB)
    blobs = [_blob(i) for i in range(30)]  # 3,000 KiB through a 1,000 KiB cache
    for digest, data in blobs:
        cache.put(digest, data)
        cache.flush()
        assert cache.get(blobs[0][0], len(blobs[0][1])) == blobs[0][1]  # kept in use
        cache.flush()
    assert cache.size() <= 1000 * KIB
    on_disk = _files_on_disk(root)
    assert sum(on_disk.values()) == cache.size()
    assert blobs[0][0].hex() in on_disk  # read all along, so never the least recently used
    assert blobs[-1][0].hex() in on_disk  # the newest
    assert blobs[1][0].hex() not in on_disk  # old and never read again: evicted
    cache.close()


def _fill(root: str, start: int) -> None:
    cache = BlobCache(root, 2000 * KIB)
    for i in range(start, start + 40):
        digest, data = _blob(i, 50 * KIB)
        cache.put(digest, data)
        assert cache.get(digest, len(data)) == data
    cache.close()


def test_processes_share_one_bound(tmp_path):
    root = str(tmp_path / "c")
    BlobCache(root, 2000 * KIB).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_fill, args=(root, 1000 * k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = BlobCache(root, 2000 * KIB)
    on_disk = _files_on_disk(root)
    assert not [f for f in on_disk if f.endswith(".tmp")]
    assert 0 < cache.size() <= 2000 * KIB
    assert sum(on_disk.values()) <= cache.size()
    for name in on_disk:  # every cached file holds exactly the bytes of its id
        with open(os.path.join(root, name[:2], name), "rb") as f:
            assert digest_of(f.read()).hex() == name
    cache.close()


def test_a_bad_limit_is_refused(tmp_path):
    with pytest.raises(ValueError):
        BlobCache(str(tmp_path / "c"), 0)


def test_reads_fill_the_cache_and_hits_need_no_pack(home, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(300 * KIB))
    with grid.Client(str(home), cache_size=10 << 20) as client:
        client.create(str(src), name="d")
        first = client.read_bytes("d", 1, "a.bin")
    for dirpath, _, names in os.walk(home / "objects"):
        for n in names:
            if "/packs/" in dirpath:
                os.unlink(os.path.join(dirpath, n))
    with grid.Client(str(home), cache_size=10 << 20) as client:  # no pack file left open
        assert client.read_bytes("d", 1, "a.bin") == first  # from the cache
        report = client.verify("d", 1)  # verify never trusts the cache
        assert report.damaged


def test_damaged_bytes_never_enter_the_cache(home, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(300 * KIB))
    with grid.Client(str(home), cache_size=10 << 20) as client:
        client.create(str(src), name="d")
        packs = [
            os.path.join(d, n)
            for d, _, ns in os.walk(home / "objects")
            for n in ns
            if "/packs/" in d
        ]
        with open(packs[0], "r+b") as f:
            f.seek(1000)
            f.write(b"\xff" * 16)
        with pytest.raises(IntegrityError):
            client.read_bytes("d", 1, "a.bin")
    assert _files_on_disk(home / "cache" / "local" / "blobs") == {}
