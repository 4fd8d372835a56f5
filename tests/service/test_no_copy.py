"""``create s3://... --no-copy`` on SeaweedFS, with versioning on and off: a version that
references the objects where they are, pinned; the pinned bytes or an error naming the object,
never other bytes; verify checks every pin; diff against a copied version; gc never touches
the bucket; bad uses refused before anything is made."""

from __future__ import annotations

import os
import re
import sqlite3
import uuid

import boto3
import pytest

import grid
from grid.client.remote import RemoteClient
from grid.store import manifest as manifest_format

pytestmark = pytest.mark.s3


@pytest.fixture
def s3(seaweedfs_endpoint):
    return boto3.client("s3", endpoint_url=seaweedfs_endpoint)


def _bucket(s3, versioned: bool) -> str:
    name = f"nc-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _fill(s3, bucket: str) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "empty": b"",
        "deep/x/y.bin": os.urandom(50_000),
        "big.bin": os.urandom(9_500_000),  # three pieces of 4 MiB
        "names/ünï cødé ☕.txt": b"unicode",
    }
    for key, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"data/{key}", Body=data)
    s3.put_object(Bucket=bucket, Key="elsewhere/not-in-prefix", Body=b"no")
    return files


def _objects(s3, bucket: str) -> dict[str, str]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_a_referenced_version_reads_the_pinned_bytes_and_stores_none(
    client, home, s3, seaweedfs_endpoint, versioned, tmp_path
):
    bucket = _bucket(s3, versioned)
    files = _fill(s3, bucket)
    v = client.create(f"s3://{bucket}/data", "refs", no_copy=True, endpoint_url=seaweedfs_endpoint)
    assert (v.files, v.size) == (len(files), sum(map(len, files.values())))
    assert v.stored_bytes < 10_000  # the manifest only
    assert dict(client.iter_files("refs", 1)) == files
    assert client.read_bytes("refs", 1, "deep/x/y.bin") == files["deep/x/y.bin"]
    with client.open("refs", 1, "big.bin") as f:  # random reads across pieces
        f.seek(4_194_300)
        assert f.read(10) == files["big.bin"][4_194_300:4_194_310]
    client.download("refs", 1, str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "big.bin").read_bytes() == files["big.bin"]
    assert client.verify("refs", 1).ok
    usage = client.usage()
    assert usage.packs == 0 and usage.referenced_bytes == usage.stored_bytes < 10_000
    assert _format(client, v) == manifest_format.PINNED_FORMAT_VERSION


def _format(client, version) -> str:
    with sqlite3.connect(client._ctx.store.manifest_path(version.manifest_id)) as db:
        return str(dict(db.execute("SELECT key, value FROM meta"))["format_version"])


def test_versioned_pins_survive_overwrites_and_deletes(client, s3, seaweedfs_endpoint):
    bucket = _bucket(s3, True)
    files = _fill(s3, bucket)
    client.create(f"s3://{bucket}/data", "refs", no_copy=True, endpoint_url=seaweedfs_endpoint)
    s3.put_object(Bucket=bucket, Key="data/a.txt", Body=b"ALPHA")
    s3.delete_object(Bucket=bucket, Key="data/big.bin")
    assert dict(client.iter_files("refs", 1)) == files  # the versions pinned, still there
    assert client.verify("refs", 1).ok
    again = client.create(
        f"s3://{bucket}/data", "refs", no_copy=True, endpoint_url=seaweedfs_endpoint
    )
    assert client.read_bytes("refs", again.number, "a.txt") == b"ALPHA"
    assert _format(client, again) == manifest_format.PINNED_FORMAT_VERSION
    assert "big.bin" not in dict(client.iter_files("refs", again.number))
    same = client.create(
        f"s3://{bucket}/data",
        "refs",
        no_copy=True,
        skip_unchanged=True,
        endpoint_url=seaweedfs_endpoint,
    )
    assert same.number == again.number  # the same pins: no new version
    twin = client.create(
        f"s3://{bucket}/data", "refs", no_copy=True, endpoint_url=seaweedfs_endpoint
    )  # numbered as its base (a delta against it), every pin one of the base's: still 3.0
    assert client._ctx.store.manifest_bases(twin.manifest_id)
    assert _format(client, twin) == manifest_format.PINNED_FORMAT_VERSION
    assert dict(client.iter_files("refs", twin.number)) == dict(
        client.iter_files("refs", again.number)
    )


def test_unversioned_objects_changed_or_deleted_are_named_never_served(
    client, s3, seaweedfs_endpoint
):
    bucket = _bucket(s3, False)
    files = _fill(s3, bucket)
    client.create(f"s3://{bucket}/data", "refs", no_copy=True, endpoint_url=seaweedfs_endpoint)
    s3.put_object(Bucket=bucket, Key="data/a.txt", Body=b"ALPHA")  # same size, new bytes
    s3.delete_object(Bucket=bucket, Key="data/big.bin")
    with pytest.raises(
        grid.ReferenceChangedError, match=re.escape(f"s3://{bucket}/data/a.txt changed")
    ):
        client.read_bytes("refs", 1, "a.txt")
    with pytest.raises(grid.ReferenceChangedError, match=r"big\.bin was deleted"):
        client.read_bytes("refs", 1, "big.bin")
    with pytest.raises(grid.IntegrityError, match=r"a\.txt"):
        dict(client.iter_files("refs", 1))
    assert client.read_bytes("refs", 1, "deep/x/y.bin") == files["deep/x/y.bin"]
    report = client.verify("refs", 1)
    assert sorted(report.damaged) == ["a.txt", "big.bin"]
    assert "changed" in report.damaged["a.txt"] and "deleted" in report.damaged["big.bin"]


def test_diff_compares_a_referenced_version_with_a_copied_one_by_content(
    client, s3, seaweedfs_endpoint
):
    bucket = _bucket(s3, True)
    _fill(s3, bucket)
    url = f"s3://{bucket}/data"
    client.create(url, "d", no_copy=True, endpoint_url=seaweedfs_endpoint)
    client.create(url, "d", endpoint_url=seaweedfs_endpoint)  # copied: the same bytes
    same = client.diff("d", 1, 2)
    assert (same.added, same.removed, same.modified) == ([], [], [])
    s3.put_object(Bucket=bucket, Key="data/a.txt", Body=b"ALPHA")  # same size
    s3.put_object(Bucket=bucket, Key="data/new.txt", Body=b"new")
    client.create(url, "d", endpoint_url=seaweedfs_endpoint)
    changed = client.diff("d", 1, 3)
    assert [c.path for c in changed.modified] == ["a.txt"]
    assert [c.path for c in changed.added] == ["new.txt"]
    assert client.diff("d", 3, 1).modified[0].path == "a.txt"


def test_gc_never_touches_the_referenced_bucket(client, s3, seaweedfs_endpoint):
    bucket = _bucket(s3, False)
    _fill(s3, bucket)
    before = _objects(s3, bucket)
    client.create(f"s3://{bucket}/data", "refs", no_copy=True, endpoint_url=seaweedfs_endpoint)
    client.create(f"s3://{bucket}/data", "refs", no_copy=True, endpoint_url=seaweedfs_endpoint)
    client.gc(grace=0, repack_below=1.0)
    client.delete("refs", 1)
    client.gc(grace=0, repack_below=1.0)
    client.delete("refs")
    client.gc(grace=0, repack_below=1.0)
    assert _objects(s3, bucket) == before


def test_no_copy_of_anything_but_an_s3_prefix_or_logged_in_is_refused(
    client, tmp_path, team_server
):
    (tmp_path / "f").write_text("x")
    with pytest.raises(grid.UsageError, match="takes an s3://bucket/prefix"):
        client.create(str(tmp_path), "local", no_copy=True)
    assert client.list() == []  # nothing was made
    _, url = team_server
    from tests.team import new_user

    _, key = new_user(team_server[0])
    with (
        RemoteClient(url, key, str(tmp_path / "remote")) as remote,
        pytest.raises(grid.UsageError, match="not available logged in"),
    ):
        remote.create("s3://bucket/data", "x", no_copy=True)


def test_an_older_reader_refuses_a_referencing_manifest(
    client, s3, seaweedfs_endpoint, monkeypatch
):
    bucket = _bucket(s3, True)
    _fill(s3, bucket)
    client.create(f"s3://{bucket}/data", "refs", no_copy=True, endpoint_url=seaweedfs_endpoint)
    from grid.store import manifest_reader

    monkeypatch.setattr(manifest_reader, "FORMAT_MAJOR", 2)  # grid before format 3.0
    with pytest.raises(grid.FormatVersionError, match=r"3\.0 is newer"):
        client.read_bytes("refs", 1, "a.txt")
