"""Storage accounting: what each version and datastore added, what each alone uses (what
deleting it and running gc gives back), and the store's total, checked against the objects on
disk and against what deletes and gcs really give back."""

from __future__ import annotations

import os
import random
import time

import pytest

import grid
from grid.service import usage as usage_service


def _on_disk(home, folders=("/packs/", "/manifests/")) -> int:
    """Bytes of every pack and manifest object of the store (or of ``folders``)."""
    return sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(home / "objects")
        for f in fs
        if any(folder in d for folder in folders)
    )


def _write(root, names, size=100_000, seed=0):
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / n).write_bytes(rng.randbytes(size))


def test_the_issues_walkthrough_a_subset_datastore_owns_its_data_once_the_other_goes(
    client, home, tmp_path
):
    """create a, create b from a subset (dedup: b adds a manifest only), delete a, gc: b now
    alone uses its data, gc says what is in use right after repacking, and the totals match
    the disk at every step."""
    _write(tmp_path / "a", [f"f{i:02d}" for i in range(30)], seed=1)
    _write(tmp_path / "b", [f"f{i:02d}" for i in range(3)], seed=1)  # the same 3 files
    client.create(str(tmp_path / "a"), name="a")
    b = client.create(str(tmp_path / "b"), name="b")
    first = client.usage()
    assert first.stored_bytes == _on_disk(home) == first.referenced_bytes
    assert first.unreferenced_bytes == 0
    assert b.stored_bytes < 5_000  # dedup: b's create stored its manifest only
    assert first.of_version("b", 1).added_bytes == b.stored_bytes
    assert first.of_version("b", 1).exclusive_bytes < 5_000  # a uses b's data too
    assert first.of_datastore("a").exclusive_bytes > 2_600_000  # the 27 files only a has

    client.delete("a")
    deleted = client.usage()
    assert [d.name for d in deleted.datastores] == ["b"]
    assert (
        deleted.referenced_bytes
        == first.referenced_bytes - first.of_version("a", 1).exclusive_bytes
    )
    assert deleted.unreferenced_bytes == _on_disk(home) - deleted.referenced_bytes

    packs_before = _on_disk(home, ("/packs/",))
    report = client.gc(grace=0)
    assert report.packs_repacked == 1
    assert report.bytes_reclaimed == packs_before - _on_disk(home, ("/packs/",))  # net
    assert report.live_packs == 1 and 300_000 < report.live_bytes < 310_000  # the bug: 0, 0 B
    after = client.usage()
    assert after.stored_bytes == _on_disk(home) == after.referenced_bytes
    assert 300_000 < after.of_version("b", 1).exclusive_bytes == after.referenced_bytes
    assert after.of_datastore("b").exclusive_bytes == after.referenced_bytes
    assert after.of_version("b", 1).added_bytes == b.stored_bytes  # fixed at creation
    dry = client.gc(dry_run=True, grace=0)
    assert (dry.live_packs, dry.live_bytes) == (report.live_packs, report.live_bytes)


def test_a_lone_version_added_what_it_alone_uses(client, home, tmp_path):
    _write(tmp_path / "s", [f"f{i}" for i in range(40)], size=30_000, seed=2)
    (tmp_path / "s" / "empty").write_bytes(b"")
    v = client.create(str(tmp_path / "s"), name="s")
    u = client.usage()
    assert u.of_version("s", 1).added_bytes == v.stored_bytes
    assert u.of_version("s", 1).exclusive_bytes == v.stored_bytes == _on_disk(home)
    assert (u.packs, u.manifests) == (1, 1)


def test_exclusive_bytes_are_what_a_delete_then_gc_gives_back(client, home, tmp_path):
    """For every version and every datastore of a store with shared, changed and repeated
    files and delta manifests: deleting it lowers the referenced bytes by exactly its
    exclusive bytes, and a gc that repacks everything leaves the disk at that figure."""
    rng = random.Random(5)
    src = tmp_path / "src"
    _write(src, [f"f{i:02d}" for i in range(20)], size=40_000, seed=3)
    client.create(str(src), name="d")
    for step in range(3):  # each version changes some files, adds one, repeats another
        for i in rng.sample(range(20), 4):
            (src / f"f{i:02d}").write_bytes(rng.randbytes(40_000))
        (src / f"new{step}").write_bytes(rng.randbytes(25_000))
        (src / f"copy{step}").write_bytes((src / "f00").read_bytes())
        client.create(str(src), name="d")
    _write(tmp_path / "e", ["f00", "f01", "own"], size=40_000, seed=3)  # shares with d
    client.create(str(tmp_path / "e"), name="e")
    bases = [client._ctx.store.manifest_bases(v.manifest_id) for v in client.versions("d")]
    assert any(bases)  # delta manifests are counted for the versions that need them
    for victim in [("d", 2), ("e", None), ("d", 4), ("d", None)]:
        before = client.usage()
        share = before.of_datastore(victim[0]) if victim[1] is None else before.of_version(*victim)
        client.delete(*victim)
        after = client.usage()
        assert after.referenced_bytes == before.referenced_bytes - share.exclusive_bytes, victim
        client.gc(grace=0, repack_below=1.0)
        client.gc(grace=0, repack_below=1.0)  # the second sweeps what readers might have held
        settled = client.usage()
        assert settled.stored_bytes == _on_disk(home) == settled.referenced_bytes, victim
        assert settled.referenced_bytes == after.referenced_bytes or victim == ("d", None)


def test_a_failed_version_counts_nothing_of_its_own_and_shows_none(
    client, home, tmp_path, monkeypatch
):
    _write(tmp_path / "s", ["a", "b"], seed=4)
    client.create(str(tmp_path / "s"), name="s")

    def broken(*args, **kwargs):
        raise grid.StorageError("the disk went away")

    monkeypatch.setattr("grid.service.create.ingest", broken)
    with pytest.raises(grid.StorageError):
        client.create(str(tmp_path / "s"), name="s")
    assert client.version("s", 2).status == "failed"
    u = client.usage()
    assert [(v.datastore, v.number) for v in u.versions] == [("s", 1)]
    assert u.of_version("s", 2) is None


def test_the_report_is_kept_until_a_version_or_gc_changes_the_store(
    client, home, tmp_path, monkeypatch
):
    _write(tmp_path / "s", ["a", "b"], seed=6)
    client.create(str(tmp_path / "s"), name="s")
    walks = []
    measure = usage_service.measure
    monkeypatch.setattr(
        usage_service, "measure", lambda *a, **k: walks.append(1) or measure(*a, **k)
    )
    first = client.usage()
    assert client.usage() == first and len(walks) == 1  # kept
    (tmp_path / "s" / "c").write_bytes(b"c" * 1000)
    client.create(str(tmp_path / "s"), name="s")
    assert client.usage() != first and len(walks) == 2  # a new version: measured again
    client.delete("s", 1)
    client.usage()
    client.gc(grace=0)
    client.usage()
    assert len(walks) == 4  # after the delete, after the gc
    kept = [f for f in os.listdir(home / "tmp") if f.startswith("usage-")]
    assert len(kept) == 1 and kept[0].endswith(".json")  # no scratch table left behind
    (home / "tmp" / kept[0]).write_text('{"key": "torn')  # torn, or written by anything else
    assert client.usage().stored_bytes == _on_disk(home) and len(walks) == 5


def test_gc_removes_a_killed_measures_scratch_table_only_once_it_is_old(client, home, tmp_path):
    _write(tmp_path / "s", ["a"], seed=7)
    client.create(str(tmp_path / "s"), name="s")
    tmp = home / "tmp"
    old, young = tmp / "usage-killed.sqlite", tmp / "usage-running.sqlite"
    old.write_bytes(b"x")
    young.write_bytes(b"x")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    client.gc(grace=0)
    assert not old.exists() and young.exists()


def test_the_quick_reader_gives_the_clients_answer(home, tmp_path):
    from grid.client.quick import connect_quick

    _write(tmp_path / "s", ["a", "b"], seed=8)
    with grid.Client(str(home)) as c:
        c.create(str(tmp_path / "s"), name="s")
        expected = c.usage()
    os.unlink(home / "tmp" / next(f for f in os.listdir(home / "tmp") if f.startswith("usage-")))
    quick = connect_quick(str(home))
    assert quick is not None
    with quick:
        assert quick.usage() == expected


def test_a_damaged_or_missing_manifest_counts_for_nothing_and_list_still_answers(
    client, home, tmp_path
):
    _write(tmp_path / "a", ["x", "y"], seed=9)
    _write(tmp_path / "b", ["z"], seed=10)
    client.create(str(tmp_path / "a"), name="a")
    b = client.create(str(tmp_path / "b"), name="b")
    whole = client.usage()
    (key,) = [
        os.path.join(d, f) for d, _, fs in os.walk(home / "objects") for f in fs
        if f == b.manifest_id
    ]  # fmt: skip
    with open(key, "r+b") as f:
        f.seek(20)
        f.write(b"\xff" * 16)
    for d, _, fs in os.walk(home / "cache"):  # and the unpacked copy kept for reading
        for f in fs:
            if f == b.manifest_id:
                os.unlink(os.path.join(d, f))
    client.delete("a", 1)  # a new catalog state: measured again, b's manifest unreadable
    damaged = client.usage()
    assert damaged.of_version("b", 1).exclusive_bytes < whole.of_version("b", 1).exclusive_bytes
    assert "b" in [d.name for d in client.list()]
    os.unlink(key)
    for f in os.listdir(home / "tmp"):
        if f.startswith("usage-"):
            os.unlink(home / "tmp" / f)
    missing = client.usage()  # gone altogether: after the retries, counted as nothing
    assert missing.manifests == 0 and missing.of_version("b", 1) is not None
    kept = [f for f in os.listdir(home / "tmp") if f.startswith("usage-")]
    assert all(not f.endswith(".json") for f in kept)  # such a report is not kept
