"""A whole installation whose packs and manifests live in an S3-compatible store."""

from __future__ import annotations

import os

import pytest

import grid
from tests.conftest import make_mixed_tree

pytest.importorskip("boto3")


@pytest.fixture
def s3_client(home, s3_endpoint, s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    with grid.Client(str(home), storage_url=f"s3://{s3_bucket}/team") as c:
        yield c


def test_create_read_verify_gc_against_s3(s3_client, s3_endpoint, s3_bucket, home, tmp_path):
    import boto3

    root = tmp_path / "tree"
    root.mkdir()
    files = make_mixed_tree(str(root))
    v = s3_client.create(str(root), name="d")
    assert v.status == "succeeded"
    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=s3_endpoint)
        .list_objects_v2(Bucket=s3_bucket)
        .get("Contents", [])
    ]
    assert any(k.startswith("team/local/packs/") for k in keys)
    assert any(k.startswith("team/local/manifests/") for k in keys)
    assert not os.path.exists(home / "objects")  # nothing stored locally
    assert dict(s3_client.iter_files("d", 1)) == files
    with s3_client.open("d", 1, "big/blob.bin") as f:
        f.seek(3 << 20)
        assert f.read(1000) == files["big/blob.bin"][3 << 20 : (3 << 20) + 1000]
    assert not s3_client.verify("d", 1).damaged
    v2 = s3_client.create(str(root), name="d")  # nothing new to upload but the manifest
    assert v2.stored_bytes < 100_000
    s3_client.delete("d", 1)
    s3_client.delete("d", 2)
    assert s3_client.gc(grace=0).bytes_reclaimed > len(files["big/blob.bin"])


def test_a_bad_storage_url_is_a_usage_error(home):
    for url in ("ftp://x", "s3://"):
        with pytest.raises(grid.UsageError):
            grid.Client(str(home), storage_url=url)
