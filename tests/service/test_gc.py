"""gc returns the space of deleted versions, repacks mostly-dead packs, keeps every remaining
version intact, and never loses what a concurrent create references."""

from __future__ import annotations

import os
import random
import threading

import grid
from grid.service import gc as gc_service


def _stored(home) -> int:
    return sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(home / "objects")
        for f in fs
        if "/packs/" in d
    )


def _write(root, names, size=200_000, seed=0):
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / n).write_bytes(rng.randbytes(size))


def _intact(client, name, number, expected):
    assert not client.verify(name, number).damaged
    assert dict(client.iter_files(name, number)) == expected


def test_gc_after_delete_returns_the_space(client, home, tmp_path):
    _write(tmp_path / "a", [f"a{i}" for i in range(100)], seed=1)  # 20 MB, its own packs
    _write(tmp_path / "b", [f"b{i}" for i in range(20)], seed=2)
    client.create(str(tmp_path / "a"), name="a")
    client.create(str(tmp_path / "b"), name="b")
    keep = dict(client.iter_files("b", 1))
    full = _stored(home)
    assert client.gc(grace=0).bytes_reclaimed == 0  # nothing deleted yet: nothing to reclaim
    client.delete("a")
    assert client.gc(dry_run=True, grace=0).bytes_reclaimed > 19_000_000
    assert _stored(home) == full  # a dry run changes nothing
    report = client.gc(grace=0)
    assert report.bytes_reclaimed > 19_000_000
    assert _stored(home) < full - 19_000_000
    _intact(client, "b", 1, keep)
    again = client.create(str(tmp_path / "a"), name="a")  # the index forgot the deleted blobs
    want = {f"a{i}": (tmp_path / "a" / f"a{i}").read_bytes() for i in range(100)}
    _intact(client, "a", again.number, want)


def test_mostly_dead_packs_are_repacked_and_manifests_follow(client, home, tmp_path):
    src = tmp_path / "src"
    _write(src, [f"f{i:03d}" for i in range(150)], seed=3)  # 30 MB: about one pack
    client.create(str(src), name="d")
    for i in range(20, 150):
        (src / f"f{i:03d}").unlink()
    client.create(str(src), name="d")  # v2 keeps 20 files of v1's pack
    expected = dict(client.iter_files("d", 2))
    client.delete("d", 1)
    before = _stored(home)
    report = client.gc(grace=0)
    assert report.packs_repacked >= 1 and report.manifests_rewritten == 1
    assert _stored(home) < before / 3
    _intact(client, "d", 2, expected)
    assert client.version("d", 2).status == "succeeded"


def test_keep_last_deletes_older_versions(client, tmp_path):
    src = tmp_path / "src"
    for i in range(4):
        _write(src, [f"v{i}"], seed=10 + i)
        client.create(str(src), name="d")
    removed = client.keep_last("d", 2)
    assert [v.number for v in removed] == [1, 2]
    assert [v.number for v in client.versions("d")] == [3, 4]


def test_gc_during_creates_loses_nothing(home, tmp_path):
    shared = [f"s{i}" for i in range(60)]
    _write(tmp_path / "base", shared, seed=5)
    with grid.Client(str(home)) as c:
        c.create(str(tmp_path / "base"), name="base")
        c.delete("base")  # its packs are garbage now, but the creates below reuse its blobs
    sources = []
    for k in range(3):
        src = tmp_path / f"src{k}"
        _write(src, shared, seed=5)
        _write(src, [f"own{j}" for j in range(30)], seed=100 + k)
        sources.append(src)
    errors: list[BaseException] = []

    def run_creates():
        try:
            with grid.Client(str(home)) as c:
                for k, src in enumerate(sources):
                    c.create(str(src), name=f"c{k}")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run_creates)
    t.start()
    with grid.Client(str(home)) as c:
        while t.is_alive():
            c.gc(grace=0)
    t.join()
    assert not errors
    with grid.Client(str(home)) as c:
        c.gc(grace=0)
        for k, src in enumerate(sources):
            want = {p.name: p.read_bytes() for p in src.iterdir()}
            _intact(c, f"c{k}", 1, want)


def test_a_create_run_while_gc_marks_keeps_its_manifest(home, tmp_path, monkeypatch):
    """gc read the catalog before this create began; the create's manifest is no orphan."""
    src = tmp_path / "src"
    _write(src, ["a", "b"], seed=1)
    mark = gc_service._mark

    def create_then_mark(ctx, db, versions):
        with grid.Client(str(home)) as other:
            other.create(str(src), name="late")
        return mark(ctx, db, versions)

    with grid.Client(str(home)) as c:
        c.create(str(src), name="early")
        monkeypatch.setattr(gc_service, "_mark", create_then_mark)
        report = c.gc(grace=0)
        monkeypatch.undo()
        assert report.manifests_deleted == 0
        assert c.verify("late", 1).ok


def test_gc_converges_and_a_dry_run_predicts_the_real_one(client, home, tmp_path):
    """Issue 12.12: a second gc finds nothing to do (a small sparse pack is not repacked run
    after run, and manifests do not grow); a dry run right after creates (whose leases are
    still held) predicts what the real run reclaims; a killed gc's scratch file goes."""
    src, small = tmp_path / "src", tmp_path / "small"
    _write(src, [f"f{i:03d}" for i in range(150)], seed=4)
    small.mkdir()
    (small / "t1").write_bytes(b"1" * 50)
    (small / "t2").write_bytes(b"2" * 50)
    client.create(str(src), name="d")
    client.create(str(small), name="s")  # a pack of two tiny blobs
    for i in range(20, 150):
        (src / f"f{i:03d}").unlink()
    (small / "t2").unlink()
    client.create(str(src), name="d")
    client.create(str(src), name="d")
    client.create(str(small), name="s")  # keeps t1: its pack is half dead, and tiny
    for ref in (("d", 1), ("d", 2), ("s", 1)):
        client.delete(*ref)
    leftover = home / "tmp" / "gc-killed.sqlite"
    leftover.parent.mkdir(exist_ok=True)
    leftover.write_bytes(b"x")
    predicted = client.gc(dry_run=True, grace=0)
    real = client.gc(grace=0)
    assert real.bytes_reclaimed > 20_000_000
    assert predicted.bytes_reclaimed == real.bytes_reclaimed
    assert (predicted.packs_deleted, predicted.packs_repacked) == (
        real.packs_deleted,
        real.packs_repacked,
    )
    assert not leftover.exists()
    manifest = client.version("d", 3).manifest_id
    again = client.gc(grace=0)
    assert (again.packs_deleted, again.packs_repacked, again.bytes_reclaimed) == (0, 0, 0)
    assert client.version("d", 3).manifest_id == manifest  # not rewritten again
    m = client._ctx.store.open_manifest(manifest)
    try:  # it names only packs it points into
        assert len(m.pack_ids) == len({b.pack_id for e in m.walk() for b in m.blobs(e)})
    finally:
        m.close()
    _intact(client, "d", 3, {p.name: p.read_bytes() for p in src.iterdir()})
