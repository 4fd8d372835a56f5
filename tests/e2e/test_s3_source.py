"""create from s3://bucket/prefix against a real S3-compatible endpoint (moto, own process)."""

from __future__ import annotations

import os
import subprocess

import pytest

import grid
from grid.sources.s3 import S3Source
from tests.conftest import count_opens, start_moto
from tests.e2e.conftest import GRID

boto3 = pytest.importorskip("boto3")

OBJECTS = {
    "a.txt": b"top",
    "a/b.bin": os.urandom(5000),  # "a/" sorts after "a.txt" in S3, before it in a tree walk
    "a/deeper/c.csv": b"x,y\n1,2\n" * 1000,
    "big.bin": os.urandom(3 << 20),  # several chunks
    "empty": b"",
    "unicode/café ☕.txt": b"bonjour",
}


@pytest.fixture
def bucket(s3_endpoint, s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    s3 = boto3.client("s3")
    for key, data in OBJECTS.items():
        s3.put_object(Bucket=s3_bucket, Key=f"data/set1/{key}", Body=data)
    s3.put_object(Bucket=s3_bucket, Key="data/other/x", Body=b"not under the prefix")
    return s3_bucket


@pytest.fixture
def opened(monkeypatch):
    """Every object the S3 source reads, by URL."""
    return count_opens(monkeypatch, S3Source)


def test_prefix_becomes_a_version_and_a_rerun_reads_only_changes(client, bucket, opened):
    v = client.create(f"s3://{bucket}/data/set1")
    assert v.ref == "set1:1" and v.files == len(OBJECTS)
    assert dict(client.iter_files("set1", 1)) == {k: d for k, d in OBJECTS.items()}
    assert client.stat("set1", 1, "a/deeper").kind == "dir"
    assert len(opened) == len(OBJECTS) - 1  # the empty object needs no GET
    opened.clear()
    boto3.client("s3").put_object(Bucket=bucket, Key="data/set1/a/b.bin", Body=b"changed")
    client.create(f"s3://{bucket}/data/set1")
    assert opened == [f"s3://{bucket}/data/set1/a/b.bin"]
    assert client.read_bytes("set1", 2, "a/b.bin") == b"changed"
    assert client.read_bytes("set1", 2, "big.bin") == OBJECTS["big.bin"]


def test_bad_s3_sources_are_one_line_errors(cli, home, bucket, s3_endpoint):
    for url, code, needle in (
        (f"s3://{bucket}/nothing/here", 2, "is an empty prefix"),
        ("s3://no-such-bucket-x/data", 2, "does not exist"),
    ):
        r = cli("datastore", "create", url, "--name", "x", "--endpoint-url", s3_endpoint)
        assert r.code == code and needle in r.err, r.err
        assert len(r.err.strip().splitlines()) == 1
    with grid.Client(str(home)) as c:
        assert c.list() == []


def test_cli_create_from_s3(cli, bucket, s3_endpoint):
    r = cli("datastore", "create", f"s3://{bucket}/data/set1", "--endpoint-url", s3_endpoint)
    assert r.code == 0, r.err
    assert "created set1:1" in r.out
    assert cli("datastore", "cat", "set1:1", "a.txt").out == "top"
    assert subprocess.run([*GRID, "--help"], capture_output=True).returncode == 0


def test_access_denied_names_the_permissions_to_grant(cli, home, tmp_path, s3_endpoint):
    """A second moto that checks credentials once the bucket is filled (3 free actions: the
    start-up probe, the bucket, the object): ours are then unknown."""
    proc, url = start_moto(tmp_path, INITIAL_NO_AUTH_ACTION_COUNT="3")
    try:
        s3 = boto3.client("s3", endpoint_url=url)
        s3.create_bucket(Bucket="locked")
        s3.put_object(Bucket="locked", Key="data/a.txt", Body=b"secret")
        r = cli("datastore", "create", "s3://locked/data", "--endpoint-url", url)
    finally:
        proc.terminate()
        proc.wait(10)
    assert r.code == 5 and len(r.err.strip().splitlines()) == 1, r.err
    assert "access denied to s3://locked/data" in r.err
    assert "grant s3:ListBucket and s3:GetObject" in r.err
    with grid.Client(str(home)) as c:
        assert c.list() == []
