"""Two installations pointed at one storage (issue 11): the first claims it, the second is
refused with one line before it changes anything, and nothing the second does (create, delete,
gc, --keep-last) touches the first's data. On moto, on SeaweedFS and on a shared folder."""

from __future__ import annotations

import os
import subprocess
import uuid

import boto3
import pytest

import grid
from tests.e2e.conftest import GRID, Result

pytestmark = pytest.mark.slow  # two installations on each kind of storage

CLAIMED_EXIT = 8


def _grid(home, *args: str, **env: str) -> Result:
    full = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0", **env}
    p = subprocess.run([*GRID, *args], capture_output=True, text=True, env=full, timeout=300)
    return Result(p.returncode, p.stdout, p.stderr)


def _tree(root, seed: int, files: int = 30) -> dict[str, bytes]:
    root.mkdir(parents=True)
    out = {}
    for i in range(files):
        data = os.urandom(20_000 + seed * 1000 + i)
        (root / f"f{i:02d}.bin").write_bytes(data)
        out[f"f{i:02d}.bin"] = data
    return out


@pytest.fixture(params=["moto", "seaweedfs", "folder"])
def storage(request, tmp_path, monkeypatch):
    """(env for both installations, a function listing every stored key)."""
    if request.param == "folder":
        shared = tmp_path / "shared-objects"
        keys = lambda: sorted(  # noqa: E731
            os.path.relpath(os.path.join(d, f), shared) for d, _, fs in os.walk(shared) for f in fs
        )
        return {"GRID_STORAGE_URL": f"file://{shared}"}, keys
    endpoint = request.getfixturevalue(
        "s3_endpoint" if request.param == "moto" else "seaweedfs_endpoint"
    )
    bucket = f"grid-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)

    def keys() -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    env = {"GRID_STORAGE_URL": f"s3://{bucket}/shared", "AWS_ENDPOINT_URL": endpoint}
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # for in-process clients
    return env, keys


def test_a_second_installation_is_refused_and_cannot_touch_the_first(storage, tmp_path):
    env, keys = storage
    a_home, b_home = tmp_path / "grid-a", tmp_path / "grid-b"
    x = _tree(tmp_path / "x", 1)
    _tree(tmp_path / "y", 2)
    r = _grid(a_home, "datastore", "create", str(tmp_path / "x"), "--name", "a", **env)
    assert r.code == 0, r.err
    stored = keys()
    assert any(k.endswith("claim.json") for k in stored)

    for args in (
        ["datastore", "create", str(tmp_path / "y"), "--name", "b"],
        ["datastore", "create", str(tmp_path / "y"), "--name", "b", "--keep-last", "1"],
        ["datastore", "gc"],
    ):
        r = _grid(b_home, *args, GRID_GC_GRACE="0", **env)
        assert r.code == CLAIMED_EXIT, (args, r.err)
        lines = r.err.strip().splitlines()
        assert len(lines) == 1, r.err
        assert "belongs to another grid installation" in lines[0]
        assert "grid server" in lines[0] and "GRID_STORAGE_URL" in lines[0]
        assert keys() == stored  # not one object added or removed
    r = _grid(b_home, "datastore", "delete", "a", "--yes", **env)
    assert r.code == 3 and keys() == stored  # B's catalog has no "a"; nothing deleted
    assert _grid(b_home, "datastore", "--json", **env).out.strip() == "[]"  # B made nothing

    assert _grid(a_home, "datastore", "verify", "a:1", **env).code == 0
    with grid.Client(str(a_home), storage_url=env["GRID_STORAGE_URL"]) as a:
        assert dict(a.iter_files("a", 1)) == x


def test_gc_keeps_objects_it_did_not_write_and_young_ones(storage, tmp_path):
    """Defence in depth: even with the claim gone (two installations that shared a prefix
    before claims existed), gc deletes only what its own installation wrote, and only once
    older than the grace period."""
    env, keys = storage
    url = env["GRID_STORAGE_URL"]
    a_home, b_home = tmp_path / "grid-a", tmp_path / "grid-b"
    x, y = _tree(tmp_path / "x", 1), _tree(tmp_path / "y", 2)
    with grid.Client(str(a_home), storage_url=url) as a:
        a.create(str(tmp_path / "x"), name="a")
    _drop_claim(env, keys)
    with grid.Client(str(b_home), storage_url=url) as b:
        b.create(str(tmp_path / "y"), name="b")
        b.create(str(tmp_path / "x"), name="gone")
        b.delete("gone")
        young = b.gc()  # default grace (24 h): nothing of its own is old enough
        assert young.bytes_reclaimed == 0 and young.kept_young >= 1
    _drop_claim(env, keys)
    with grid.Client(str(a_home), storage_url=url) as a:
        report = a.gc(grace=0)
        assert report.kept_unknown >= 2  # B's pack and manifests: not A's to judge
        assert not a.verify("a", 1).damaged and dict(a.iter_files("a", 1)) == x
    _drop_claim(env, keys)
    with grid.Client(str(b_home), storage_url=url) as b:
        assert b.gc(grace=0).bytes_reclaimed > 0  # B's own deleted datastore goes now
        assert not b.verify("b", 1).damaged and dict(b.iter_files("b", 1)) == y


def _drop_claim(env, keys) -> None:
    url = env["GRID_STORAGE_URL"]
    claim = next(k for k in keys() if k.endswith("claim.json"))
    if url.startswith("file://"):
        os.unlink(os.path.join(url[7:], claim))
    else:
        bucket = url[5:].split("/", 1)[0]
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).delete_object(
            Bucket=bucket, Key=claim
        )
