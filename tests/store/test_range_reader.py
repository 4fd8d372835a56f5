"""One random-access reader (``grid.store.reader.RangeReader``) behind ``open()``, fsspec and
the mount's snapshot: each blob is fetched and verified once however the reads fall, a reader
going forward has the next blobs fetched ahead, and damage is an IntegrityError."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

import grid
from grid.store.repository import Store


@pytest.fixture
def fetches(monkeypatch) -> Counter:
    """digest -> how many times the store fetched (and verified) that blob."""
    counted: Counter = Counter()
    real = Store.read_blob

    def read_blob(self, loc, cached=True):
        counted[loc.digest] += 1
        return real(self, loc, cached=False)  # no disk cache: every read is a fetch

    monkeypatch.setattr(Store, "read_blob", read_blob)
    return counted


@pytest.fixture
def big(client, tmp_path) -> bytes:
    data = os.urandom(6 << 20)  # several content-defined blobs, fewer bytes than the cache
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "big.bin").write_bytes(data)
    (tmp_path / "d" / "small").write_bytes(b"tiny")
    client.create(str(tmp_path / "d"), "r")
    return data


@pytest.mark.parametrize("step", [4096, 1000_003, 3 << 20])
def test_open_read_forward_fetches_each_blob_once(client, big, fetches, step):
    with client.open("r", 1, "big.bin") as f:
        got = b"".join(iter(lambda: f.read(step), b""))
    assert got == big
    assert len(fetches) >= 3 and max(fetches.values()) == 1
    assert threading.active_count() < 20  # read-ahead threads end with the file


def test_random_reads_are_right_and_seeks_reuse_verified_blobs(client, big, fetches):
    rng = random.Random(5)
    with client.open("r", 1, "big.bin") as f:
        for _ in range(200):
            at, n = rng.randrange(len(big)), rng.randrange(1, 70_000)
            f.seek(at)
            assert f.read(n) == big[at : at + n]
    assert max(fetches.values()) == 1  # the cache of verified blobs (8 MiB) serves re-reads


def test_snapshot_and_open_read_the_same_bytes(client, big, fetches):
    snap = client.snapshot("r", 1)
    try:
        entry = snap.child(snap.manifest.stat("").id, "big.bin")
        pieces = [snap.read(entry, at, 65536) for at in range(0, len(big), 65536)]
    finally:
        snap.close()
    assert b"".join(pieces) == big
    assert max(fetches.values()) == 1
    assert client.read_bytes("r", 1, "small") == b"tiny"


def test_a_damaged_blob_is_an_integrity_error_not_other_bytes(client, big, home):
    root = os.path.join(home, "objects", "local", "packs")
    packs = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    assert packs
    for path in packs:
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 3)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
    with client.open("r", 1, "big.bin") as f, pytest.raises(grid.IntegrityError):
        f.read()


def test_threads_reading_one_snapshot_at_once_get_right_bytes_and_share_fetches(
    client, big, fetches
):
    """The mount answers requests in several threads over one snapshot: reads of the same
    blob at the same time share one fetch, and every read gets its own bytes."""
    snap = client.snapshot("r", 1)
    entry = snap.child(0, "big.bin")
    start = threading.Barrier(8)

    def reader(seed: int) -> int:
        rng = random.Random(seed)
        start.wait()
        for _ in range(60):
            at, n = rng.randrange(len(big)), rng.randrange(1, 300_000)
            assert snap.read(entry, at, n) == big[at : at + n]
        return seed

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(reader, range(8))) == list(range(8))  # re-raises a failure
    snap.close()
    assert max(fetches.values()) == 1  # 6 MiB fit the 64 MiB cache: each blob fetched once
