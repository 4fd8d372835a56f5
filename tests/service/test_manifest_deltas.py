"""A version's manifest is stored as a delta against the version before it (format 2.0):
what that saves, and that no delete, gc or repack ever leaves a delta without its base."""

from __future__ import annotations

import os
import shutil

import pytest

import grid
from grid.errors import ConflictError
from grid.store.manifest_object import MAX_CHAIN
from grid.store.repository import manifest_key


def _tree(root, files: int = 300, size: int = 200) -> None:
    for i in range(files):
        d = root / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}.bin").write_bytes(os.urandom(size + i))


def _change(root, i: int, size: int = 300) -> None:
    (root / f"d{i % 7}" / f"f{i:04d}.bin").write_bytes(os.urandom(size + i))
    (root / f"new-{i}.txt").write_text(str(i))


def _store(client):
    return client._ctx.store  # white box: what is stored, and against what


def _stored(client, manifest_id: str) -> int:
    return _store(client).objects.size(manifest_key(manifest_id))


def _forget_cache(client) -> None:
    """Drop every manifest this machine unpacked: the next read rebuilds from the store."""
    shutil.rmtree(os.path.join(_store(client).cache_dir, "manifests"), ignore_errors=True)


def _contents(client, name: str, number: int) -> dict[str, bytes]:
    return dict(client.iter_files(name, number))


def test_a_changed_version_stores_a_small_delta_that_reads_back(client, home, tmp_path):
    src = tmp_path / "src"
    _tree(src)
    v1 = client.create(str(src), "d")
    _change(src, 5)
    v2 = client.create(str(src), "d")
    store = _store(client)
    assert store.manifest_bases(v1.manifest_id) == []
    assert store.manifest_bases(v2.manifest_id) == [v1.manifest_id]
    assert _stored(client, v2.manifest_id) < _stored(client, v1.manifest_id) / 3
    expected = {p: (src / p).read_bytes() for p in _contents(client, "d", 2)}
    _forget_cache(client)
    with grid.Client(str(home)) as c:  # a fresh process's view: rebuilt from the store
        assert _contents(c, "d", 2) == expected
        assert c.verify("d", 2).ok and c.verify("d", 1).ok
        assert [e.path for e in c.diff("d", 1, 2).added] == ["new-5.txt"]


def test_chains_stop_at_the_cap_and_every_version_reads_back(client, tmp_path):
    src = tmp_path / "src"
    _tree(src, 60)
    versions = [client.create(str(src), "d")]
    for i in range(MAX_CHAIN + 2):
        _change(src, i)
        versions.append(client.create(str(src), "d"))
    chains = [_store(client).manifest_bases(v.manifest_id) for v in versions]
    assert max(len(c) for c in chains) == MAX_CHAIN
    assert chains[MAX_CHAIN + 1] == []  # the ninth would exceed the cap: whole
    assert chains[MAX_CHAIN + 2] == [versions[MAX_CHAIN + 1].manifest_id]
    sums = {v.number: client.verify("d", v.number).ok for v in versions}
    _forget_cache(client)
    assert {v.number: client.verify("d", v.number).ok for v in versions} == sums
    assert all(sums.values())


def test_deleting_a_base_keeps_its_manifest_until_no_delta_needs_it(client, tmp_path):
    src = tmp_path / "src"
    _tree(src)
    v1 = client.create(str(src), "d")
    _change(src, 1)
    v2 = client.create(str(src), "d")
    _change(src, 2)
    v3 = client.create(str(src), "d")
    objects = _store(client).objects
    client.delete("d", 1)
    assert objects.exists(manifest_key(v1.manifest_id))  # v2 and v3 are deltas against it
    client.gc(grace=0)
    assert objects.exists(manifest_key(v1.manifest_id))
    _forget_cache(client)
    assert client.verify("d", 3).ok and client.verify("d", 2).ok
    client.delete("d", 2)
    assert objects.exists(manifest_key(v1.manifest_id))  # v3 -> v2 -> v1
    assert objects.exists(manifest_key(v2.manifest_id))
    client.delete("d", 3)
    for v in (v1, v2, v3):
        assert not objects.exists(manifest_key(v.manifest_id))


def test_deleting_the_datastore_deletes_every_manifest(client, tmp_path):
    src = tmp_path / "src"
    _tree(src, 30)
    made = [client.create(str(src), "d")]
    _change(src, 1)
    made.append(client.create(str(src), "d"))
    client.delete("d")
    objects = _store(client).objects
    assert not [o.key for o in objects.list("manifests/")]
    assert not any(objects.exists(manifest_key(v.manifest_id)) for v in made)


def test_a_repack_rewrites_whole_manifests_and_keeps_the_bases_deltas_need(client, tmp_path):
    src = tmp_path / "src"
    _tree(src, 200, 20_000)
    client.create(str(src), "d")
    for i in range(0, 200, 2):  # half of v1's bytes die with v1: its pack gets repacked
        _change(src, i, 20_000)
    client.create(str(src), "d")
    _change(src, 1)
    client.create(str(src), "d")
    client.delete("d", 1)
    report = client.gc(grace=0)
    assert report.packs_repacked > 0
    store = _store(client)
    for v in client.versions("d"):
        for base in store.manifest_bases(v.manifest_id):
            assert store.objects.exists(manifest_key(base)), (v.ref, base)
    _forget_cache(client)
    assert all(client.verify("d", v.number).ok for v in client.versions("d"))
    for _ in range(3):  # a retired delta goes first, then the bases only it needed
        client.gc(grace=0)
    _forget_cache(client)
    assert all(client.verify("d", v.number).ok for v in client.versions("d"))
    left = {o.key for o in store.objects.list("manifests/")}
    assert left == {manifest_key(v.manifest_id) for v in client.versions("d")}


def test_a_base_being_built_on_cannot_be_deleted(client, tmp_path):
    src = tmp_path / "src"
    _tree(src, 20)
    client.create(str(src), "d")
    _change(src, 1)
    held = []

    def progress(_stats) -> None:  # the create of v2 runs: v1 is its base
        if not held:
            with pytest.raises(ConflictError, match="d:1"):
                client.delete("d", 1)
            held.append(True)

    client._ctx.on_held = None
    from grid.service import create

    create.create(client._ctx, str(src), "d", progress=progress)
    assert held
    assert client.verify("d", 2).ok


def test_team_mode_stores_whole_manifests(remote_client, tmp_path):
    src = tmp_path / "src"
    _tree(src, 30)
    remote_client.create(str(src), "d")
    _change(src, 1)
    v2 = remote_client.create(str(src), "d")
    assert v2.status == "succeeded"
    assert remote_client.verify("d", 2).ok
    assert _contents(remote_client, "d", 2)["new-1.txt"] == b"1"


def test_a_delta_on_s3_is_rebuilt_from_its_chain_on_a_fresh_machine(
    home, tmp_path, s3_endpoint, s3_bucket, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    storage = f"s3://{s3_bucket}/g"
    src = tmp_path / "src"
    _tree(src, 40)
    with grid.Client(str(home), storage_url=storage) as c:
        c.create(str(src), "d")
        for i in range(3):
            _change(src, i)
            c.create(str(src), "d")
        last = c.versions("d")[-1]
        assert len(_store(c).manifest_bases(last.manifest_id)) == 3  # read by a range GET
        expected = {n: _contents(c, "d", n) for n in (1, 2, 3, 4)}
    shutil.rmtree(home / "cache")  # a fresh machine's cache: every manifest comes from S3
    with grid.Client(str(home), storage_url=storage) as c:
        assert _contents(c, "d", 4) == expected[4]
        assert {n: _contents(c, "d", n) for n in (1, 2, 3, 4)} == expected


def test_the_sweep_asks_for_bases_while_the_versions_are_locked(client, tmp_path):
    """A create holds the version it builds a delta on until its own version is named, so the
    sweep must learn the bases under the lock, not before it (or a delta stored in between
    would lose its base)."""
    from grid.service.retire import sweep
    from grid.store.readers import ReaderLocks

    src = tmp_path / "src"
    _tree(src, 10)
    v1 = client.create(str(src), "d")
    store = _store(client)
    store.index.retire([(manifest_key(v1.manifest_id), [v1.ref])])
    other = ReaderLocks(store.readers.folder)  # another reader's view of the same locks
    free: list[bool] = []

    def bases() -> set[str]:
        with other.deleting(v1.ref) as got:
            free.append(got)
        return {v1.manifest_id}

    assert sweep(client._ctx, bases) == (0, 0)
    assert free == [False]  # asked while the sweep held v1
    assert store.objects.exists(manifest_key(v1.manifest_id))
    assert sweep(client._ctx, set) == (1, 0)  # no delta needs it: it goes
    assert not store.objects.exists(manifest_key(v1.manifest_id))
