"""One behavioural suite for every object backend: memory, local directory (with and without
fsync) and S3 (a real S3-compatible HTTP endpoint: moto's server, a separate process)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from grid.errors import NotFoundError, UsageError
from grid.objects import LocalDirectory, MemoryStore


@pytest.fixture(params=["memory", "local", "local-durable", "s3"])
def backend(request, tmp_path):
    if request.param == "memory":
        return MemoryStore()
    if request.param == "s3":
        from grid.objects.s3 import S3Store

        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        return S3Store(bucket, "some/prefix", endpoint_url=endpoint)
    return LocalDirectory(tmp_path / "objects", durable=request.param == "local-durable")


def test_put_get_roundtrip_from_parts(backend):
    n = backend.put("packs/ab/abcd", [b"hello ", memoryview(b"world"), bytearray(b"!")])
    assert n == 12
    assert backend.get("packs/ab/abcd") == b"hello world!"
    assert backend.size("packs/ab/abcd") == 12


def test_put_many_parts_beyond_iov_max(backend):
    parts = [bytes([i % 256]) * 3 for i in range(3000)]
    backend.put("k", parts)
    assert backend.get("k") == b"".join(parts)


def test_put_replaces_atomically_and_is_idempotent(backend):
    backend.put("k", [b"one"])
    backend.put("k", [b"two"])
    backend.put("k", [b"two"])
    assert backend.get("k") == b"two"


def test_get_range_inside_and_past_end(backend):
    backend.put("k", [b"0123456789"])
    assert backend.get_range("k", 2, 3) == b"234"
    assert backend.get_range("k", 8, 10) == b"89"


def test_get_ranges_reads_each_range_in_order(backend):
    data = bytes(range(256)) * 40
    backend.put("k", [data])
    ranges = [(0, 5), (5, 100), (300, 0), (1000, 24), (10_100, 500)]  # gaps, empty, past end
    got = backend.get_ranges("k", ranges)
    assert got == [data[o : o + n] for o, n in ranges]
    assert got[-1] == data[10_100:] and all(type(b) is bytes for b in got)
    assert backend.get_ranges("k", []) == []
    with pytest.raises(NotFoundError):
        backend.get_ranges("nope", [(0, 1), (1, 1)])


def test_missing_key_raises_not_found(backend):
    with pytest.raises(NotFoundError):
        backend.get("nope")
    with pytest.raises(NotFoundError):
        backend.get_range("nope", 0, 1)
    with pytest.raises(NotFoundError):
        backend.size("nope")
    assert not backend.exists("nope")


def test_delete_is_idempotent(backend):
    backend.put("k", [b"x"])
    backend.delete("k")
    backend.delete("k")
    assert not backend.exists("k")


def test_list_by_prefix_with_sizes_and_write_times(backend):
    before = time.time()
    for key, size in (("packs/aa/1", 1), ("packs/bb/2", 2000), ("manifests/cc/3", 3)):
        backend.put(key, [b"x" * size])
    listed = sorted(backend.list("packs/"))
    assert [(o.key, o.size) for o in listed] == [("packs/aa/1", 1), ("packs/bb/2", 2000)]
    # write times are the store's clock (S3: whole seconds), close to ours
    assert all(before - 2 <= o.modified <= time.time() + 2 for o in listed)
    assert len(list(backend.list())) == 3


def test_put_if_absent_stores_once_and_never_replaces(backend):
    assert backend.put_if_absent("claim.json", b"first") is True
    assert backend.put_if_absent("claim.json", b"second") is False
    assert backend.get("claim.json") == b"first"
    backend.put("taken", [b"by put"])
    assert backend.put_if_absent("taken", b"other") is False
    assert backend.get("taken") == b"by put"


def test_put_if_absent_races_have_one_winner(backend):
    won: list[int] = []

    def work(i):
        if backend.put_if_absent("race", str(i).encode()):
            won.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert backend.get("race") == str(won[0]).encode()


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../b", "a//b", "a/./b", "sp ace"])
def test_unsafe_keys_are_refused(backend, key):
    with pytest.raises(UsageError):
        backend.put(key, [b"x"])


def test_put_file(backend, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(100_000))
    assert backend.put_file("m/x", str(src)) == 100_000
    assert backend.get("m/x") == src.read_bytes()


def test_concurrent_puts_of_distinct_keys(backend):
    def work(i):
        backend.put(f"k/{i}", [str(i).encode() * 1000])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(16):
        assert backend.get(f"k/{i}") == str(i).encode() * 1000


def test_local_leaves_no_temp_files(tmp_path):
    store = LocalDirectory(tmp_path / "o")
    store.put("a/b", [b"x" * 10])
    leftovers = [n for _, _, names in os.walk(tmp_path / "o") for n in names if "tmp" in n]
    assert leftovers == []


def test_concurrent_range_reads_over_many_objects_then_replace_and_delete(backend):
    blobs = {f"packs/{i:03d}": os.urandom(2000 + i) for i in range(150)}  # > the fd cache
    for key, data in blobs.items():
        backend.put(key, [data])
    errors = []

    def reader(seed):
        rng = __import__("random").Random(seed)
        for _ in range(400):
            key = rng.choice(list(blobs))
            off = rng.randrange(len(blobs[key]))
            if backend.get_range(key, off, 100) != blobs[key][off : off + 100]:
                errors.append(key)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    backend.put("packs/000", [b"replaced"])
    assert backend.get_range("packs/000", 0, 8) == b"replaced"
    backend.delete("packs/001")
    with pytest.raises(NotFoundError):
        backend.get_range("packs/001", 0, 1)
    backend.close()
    assert backend.get_range("packs/002", 0, 10) == blobs["packs/002"][:10]  # reopens
