"""What only the S3 backend has: multipart uploads, URLs, and clear errors from the endpoint."""

from __future__ import annotations

import os

import pytest

from grid.errors import StorageError

s3 = pytest.importorskip("grid.objects.s3")


def test_big_objects_go_up_in_parts(s3_endpoint, s3_bucket, monkeypatch):
    monkeypatch.setattr(s3, "_MULTIPART_OVER", 6 << 20)
    monkeypatch.setattr(s3, "_PART", 5 << 20)  # S3's smallest part
    store = s3.S3Store(s3_bucket, "p", endpoint_url=s3_endpoint)
    data = os.urandom(12 << 20)
    assert store.put("packs/aa/big", [data[:1000], data[1000:]]) == len(data)
    assert store.get("packs/aa/big") == data
    assert store.get_range("packs/aa/big", (5 << 20) - 3, 6) == data[(5 << 20) - 3 : (5 << 20) + 3]


def test_a_missing_bucket_is_a_clear_storage_error(s3_endpoint):
    store = s3.S3Store("no-such-bucket-here", endpoint_url=s3_endpoint)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        store.put("k", [b"x"])


def test_parse_url():
    assert s3.parse_url("s3://bucket") == ("bucket", "")
    assert s3.parse_url("s3://bucket/a/b/") == ("bucket", "a/b")
    for bad in ("bucket/x", "s3://", "http://x"):
        with pytest.raises(ValueError):
            s3.parse_url(bad)
