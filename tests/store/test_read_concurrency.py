"""Small files are read by one worker while the page cache holds them and by all workers once
the disk has to be read: a read that never waits tells which (RWF_NOWAIT)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from grid.store import ingest
from grid.store.source_reading import READ, digest_batch
from grid.tree import SourceEntry


def _entry(path, size: int) -> SourceEntry:
    st = os.stat(path)
    return SourceEntry(
        "", os.path.basename(path), st.st_mode, size, st.st_mtime_ns, location=str(path)
    )


class _Files:
    """A one-file source for digest_batch."""

    def open(self, entry):
        return open(entry.location, "rb", buffering=0)


def _evict(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_a_file_out_of_the_page_cache_counts_as_cold_and_reads_right(tmp_path):
    path = tmp_path / "f.bin"
    data = os.urandom(50_000)
    path.write_bytes(data)
    entry = _entry(path, len(data))
    _evict(path)
    cold = digest_batch(_Files(), [(entry, READ, True)], lambda _m: None)
    assert cold.cold == 1 and cold[0][4] == len(data)
    warm = digest_batch(_Files(), [(entry, READ, True)], lambda _m: None)
    assert warm.cold == 0 and warm[0][1] == cold[0][1]  # same digest, now from the cache
    assert bytes(warm[0][2]) == data


@pytest.mark.parametrize("grew", [1, -1])
def test_a_file_that_changed_size_since_listing_is_read_whole(tmp_path, grew):
    path = tmp_path / "f.bin"
    data = os.urandom(4000)
    path.write_bytes(data)
    entry = _entry(path, len(data) - grew)  # the listing saw another size
    (result,) = digest_batch(_Files(), [(entry, READ, True)], lambda _m: None)
    assert result[4] == len(data)


def _concurrency(monkeypatch, cold: bool) -> list[int]:
    """How many batches were being read at once, seen at each batch after the first."""
    lock, running, seen, done = threading.Lock(), [0], [], [0]

    def digest(source, batch, warn):
        with lock:
            running[0] += 1
            if done[0]:
                seen.append(running[0])
        time.sleep(0.02)
        out = digest_batch(source, batch, warn)
        out.cold = out.read if cold else 0
        with lock:
            running[0] -= 1
            done[0] += 1
        return out

    monkeypatch.setattr(ingest, "digest_batch", digest)
    return seen


@pytest.mark.parametrize("cold", [False, True])
def test_workers_read_in_parallel_only_when_the_disk_is_read(client, tmp_path, monkeypatch, cold):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3000):  # about a dozen batches of 256 files
        (src / f"f{i:05d}").write_bytes(b"%d" % i * 10)
    seen = _concurrency(monkeypatch, cold)
    v = client.create(str(src), "d")
    assert v.files == 3000
    assert seen
    if cold:
        assert max(seen) > 1
    else:
        assert max(seen) == 1
    assert dict(client.iter_files("d", 1))["f00007"] == b"7" * 10
