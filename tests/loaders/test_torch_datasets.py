"""grid.torch: every file once an epoch across ranks and workers, the same order for the same
seed, resume mid-epoch, damage named in the worker that met it, clean pickling (spawn)."""

from __future__ import annotations

import os
import pickle
import random

import pytest
from torch.utils.data import DataLoader

import grid
import grid.torch as gt


def _as_list(batch):
    return batch


def _path_and_length(path, data):
    return path, len(data)


@pytest.fixture
def tree(tmp_path, home, monkeypatch):
    """A version ``ds:1`` of 8 folders × 40 files in several packs (sizes 0 B to 300 kB, so
    that reads mix tiny, empty and multi-MB batches), and its files."""
    rng = random.Random(3)
    root = tmp_path / "src"
    files: dict[str, bytes] = {}
    for d in range(8):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(40):
            size = rng.choice([0, 10, 1_000, 20_000, 300_000])
            data = rng.randbytes(size)
            (root / f"d{d}" / f"f{i:02d}.bin").write_bytes(data)
            files[f"d{d}/f{i:02d}.bin"] = data
    (root / "notes.txt").write_text("not a .bin")
    files["notes.txt"] = b"not a .bin"
    from grid.store import ingest

    monkeypatch.setattr(ingest, "PACK_MAX_BLOBS", 60)  # packs of 60 files
    with grid.Client(str(home)) as c:
        v = c.create(str(root), name="ds")
        assert len({b.pack_id for b in _blobs(c, v)}) >= 2  # several packs: shuffles matter
    return files


def _blobs(client, version):
    m = client._ctx.store.open_manifest(version.manifest_id)
    try:
        return [b for e in m.walk() for b in m.blobs(e)]
    finally:
        m.close()


def _epoch(dataset, workers, batch_size, **loader):
    loader_ = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=_as_list, **loader
    )
    return [item for batch in loader_ for item in batch]


def test_every_file_once_an_epoch_across_two_ranks_of_three_workers(tree, home):
    bins = {p: d for p, d in tree.items() if p.endswith(".bin")}
    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            ds = gt.IterableDataset(
                "ds",
                suffixes=[".bin"],
                shuffle=True,
                seed=7,
                rank=rank,
                world_size=2,
                batch_size=5,
                home=str(home),
            )
            ds.set_epoch(epoch)
            got = _epoch(ds, 3, 5)
            assert abs(len(got) - len(bins) / 2) <= 1
            seen += got
            ds.close()
        assert sorted(p for p, _ in seen) == sorted(bins)  # each once, none twice
        assert all(data == bins[p] for p, data in seen)  # and the right bytes


def test_the_same_seed_gives_the_same_order_whatever_the_workers(tree, home, monkeypatch):
    def order(workers, seed, epoch, window=4096, **env):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        ds = gt.IterableDataset(
            "ds", shuffle=True, seed=seed, batch_size=4, window=window, home=str(home)
        )
        ds.set_epoch(epoch)
        try:
            return [p for p, _ in _epoch(ds, workers, 4)]
        finally:
            ds.close()

    first = order(0, 1, 0)
    assert order(3, 1, 0) == first == order(2, 1, 0)  # the rank's order, any worker count
    assert sorted(first) == sorted(tree)
    assert order(2, 1, 1) != first and order(2, 2, 0) != first
    plain = gt.IterableDataset("ds", home=str(home))
    assert [p for p, _ in plain] == [p for p, _ in gt.IterableDataset("ds", home=str(home))]
    pack_of = dict(zip(plain.files.paths, plain.files.packs, strict=True))
    local = order(2, 1, 0, window=60)  # pack locality: a window spans two or three packs
    assert sorted(local) == sorted(first) and local != first
    for start in range(0, len(local), 60):
        assert len({pack_of[p] for p in local[start : start + 60]}) <= 3
    assert len({pack_of[p] for p in first[:60]}) > 3  # (one window of all: no locality)
    halves = order(0, 1, 0, RANK="1", WORLD_SIZE="2")  # from the environment
    assert halves == first[len(first) // 2 :]


def test_resume_gives_the_rest_of_the_epoch_in_the_same_order(tree, home):
    ds = gt.IterableDataset("ds", shuffle=True, seed=3, batch_size=6, home=str(home))
    ds.set_epoch(2)
    whole = [p for p, _ in _epoch(ds, 3, 6)]
    loader = iter(DataLoader(ds, batch_size=6, num_workers=3, collate_fn=_as_list))
    consumed = [p for _ in range(7) for p, _ in next(loader)]
    del loader  # the job stops
    assert consumed == whole[:42]
    state = ds.state_dict(samples=len(consumed))
    again = gt.IterableDataset("ds", shuffle=True, seed=0, batch_size=6, home=str(home))
    again.load_state_dict(state)
    rest = [p for p, _ in _epoch(again, 2, 6)]  # another worker count: the same rest
    assert rest == whole[42:]
    solo = gt.IterableDataset("ds", batch_size=6, home=str(home))  # no workers: counted
    it = iter(solo)
    firsts = [next(it)[0] for _ in range(10)]
    it.close()
    assert solo.state_dict()["samples"] == 10
    resumed = gt.IterableDataset("ds", batch_size=6, home=str(home))
    resumed.load_state_dict(solo.state_dict())
    assert firsts + [p for p, _ in resumed] == [p for p, _ in solo]
    other = gt.IterableDataset("ds", suffixes=[".txt"], home=str(home))
    with pytest.raises(ValueError, match="another number of files"):
        other.load_state_dict(state)


def test_a_damaged_blob_raises_a_grid_error_naming_the_file_in_the_worker(tree, home):
    with grid.Client(str(home)) as c:
        v = c.version("ds", 1)
        m = c._ctx.store.open_manifest(v.manifest_id)
        try:
            victim = next(e for e in m.walk() if e.size == 300_000)
            (blob,) = m.blobs(victim)
        finally:
            m.close()
    packs = home / "objects" / "local" / "packs"
    (pack,) = [p for p in packs.rglob(blob.pack_id)]
    with open(pack, "r+b") as f:
        f.seek(blob.offset + 100)
        byte = f.read(1)
        f.seek(blob.offset + 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    ds = gt.IterableDataset("ds", batch_size=4, home=str(home))
    with pytest.raises(grid.IntegrityError) as info:
        _epoch(ds, 2, 4)
    assert victim.path in str(info.value) and "worker process" in str(info.value)
    mapped = gt.Dataset("ds", home=str(home))
    index = mapped.files.paths.index(victim.path)
    with pytest.raises(grid.IntegrityError, match=victim.name):
        mapped[index]


def test_the_map_style_dataset_reads_any_file_by_index_in_spawned_workers(tree, home):
    ds = gt.Dataset("ds:1", transform=_path_and_length, prefix="d3", home=str(home))
    assert len(ds) == 40 and all(p.startswith("d3/") for p in ds.files.paths)
    assert ds[5] == (ds.files.paths[5], len(tree[ds.files.paths[5]]))
    raw = gt.Dataset("ds", suffixes=(".txt",), home=str(home))
    assert len(raw) == 1 and raw[0] == ("notes.txt", b"not a .bin")
    clone = pickle.loads(pickle.dumps(ds))  # the file list travels; no open handle does
    assert clone.files._opened is None and clone[5] == ds[5]
    clone.close()
    got = _epoch(ds, 2, 7, shuffle=True, multiprocessing_context="spawn")
    assert sorted(got) == sorted((p, len(tree[p])) for p in tree if p.startswith("d3/"))
    it = gt.IterableDataset("ds", transform=_path_and_length, home=str(home))
    spawned = _epoch(it, 2, 8, multiprocessing_context="spawn")
    assert sorted(spawned) == sorted((p, len(d)) for p, d in tree.items())


def test_an_open_dataset_holds_its_version_and_an_empty_choice_reads_nothing(tree, home):
    ds = gt.IterableDataset("ds", home=str(home))
    with grid.Client(str(home)) as c, pytest.raises(grid.ConflictError, match="in use"):
        c.delete("ds", 1)
    ds.close()
    none = gt.IterableDataset("ds", suffixes=[".jpg"], home=str(home))
    assert len(none) == 0 and _epoch(none, 2, 4) == []
    with pytest.raises(grid.VersionNotFoundError):
        gt.Dataset("ds:9", home=str(home))
    with pytest.raises(grid.DatastoreNotFoundError):
        gt.IterableDataset("nope", home=str(home))
    assert os.listdir(home / "tmp") == [] or all(
        not n.startswith("manifest-") for n in os.listdir(home / "tmp")
    )
