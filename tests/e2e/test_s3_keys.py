"""S3 keys follow the archive path rule: a key that cannot be a path (an empty, '.' or '..'
segment, a segment over 255 bytes, a file and a folder of one name, a '/'-ended key with a
body) refuses the source with one line naming it, and no version is left behind. Zero-byte
'/'-ended keys are folder markers."""

from __future__ import annotations

import pytest

import grid
from grid.errors import ArchiveError

boto3 = pytest.importorskip("boto3")


@pytest.fixture
def put(s3_endpoint, s3_bucket, monkeypatch):
    """put(key, body) under the bucket; a good datastore 'keep' exists already."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    s3 = boto3.client("s3")

    def put_object(key: str, body: bytes = b"x") -> None:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)

    put_object("good/keep.txt", b"kept")
    return put_object


def _refused(client, bucket: str) -> str:
    """Create from s3://bucket/set, as 'keep' (which exists) and as 'fresh': both refused, no
    version left; return the message."""
    good = client.create(f"s3://{bucket}/good", "keep")
    before = client.versions("keep")
    with pytest.raises(ArchiveError) as refused:
        client.create(f"s3://{bucket}/set", "keep")
    assert client.versions("keep") == before
    assert client.read_bytes("keep", good.number, "keep.txt") == b"kept"
    with pytest.raises(ArchiveError):
        client.create(f"s3://{bucket}/set", "fresh")
    assert [d.name for d in client.list()] == ["keep"]
    message = str(refused.value)
    assert len(message) < 600 and "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        (["set/a/./b"], "'set/a/./b' has a '.' segment"),
        (["set/./b"], "'set/./b' has a '.' segment"),
        (["set/a/../b"], "'set/a/../b' has a '..' segment"),
        (["set/a//b"], "'set/a//b' has an empty segment"),
        (["set//b"], "'set//b' has an empty segment"),
        (["set/ok.txt", "set/d/" + "n" * 300], "has a name over 255 bytes"),
    ],
    ids=["dot", "top dot", "dot-dot", "double slash", "top double slash", "long segment"],
)
def test_keys_that_are_no_path_are_refused(client, put, s3_bucket, keys, words):
    put("set/ok.txt")
    for key in keys:
        put(key)
    message = _refused(client, s3_bucket)
    assert words in message, message


def test_file_and_folder_of_one_name_are_refused_naming_both(client, put, s3_bucket):
    put("set/a", b"file")
    put("set/a/b", b"inside")
    message = _refused(client, s3_bucket)
    assert (
        "'set/a'" in message and "'set/a/b'" in message and "both a file and a folder" in (message)
    ), message


def test_marker_with_a_body_is_refused(client, put, s3_bucket):
    put("set/ok.txt")
    put("set/d/", b"not empty")
    put("set/d/f.txt")
    message = _refused(client, s3_bucket)
    assert "'set/d/' ends in '/' but holds 9 bytes" in message, message


def test_zero_byte_markers_are_folders(client, put, s3_bucket):
    put("set/d/", b"")  # as the AWS console's "Create folder" makes
    put("set/d/f.txt", b"f")
    put("set/empty/", b"")
    put("set/top.txt", b"t")
    v = client.create(f"s3://{s3_bucket}/set", "marked")
    assert v.status == "succeeded" and v.files == 2
    assert dict(client.iter_files("marked", v.number)) == {"d/f.txt": b"f", "top.txt": b"t"}
    assert client.stat("marked", v.number, "empty").kind == "dir"
    assert client.stat("marked", v.number, "d").kind == "dir"


def test_cli_refusal_is_one_line_exit_5(cli, home, put, s3_bucket, s3_endpoint):
    put("set/a", b"file")
    put("set/a/b", b"inside")
    r = cli("datastore", "create", f"s3://{s3_bucket}/set", "--endpoint-url", s3_endpoint)
    assert r.code == 5, r.err
    assert len(r.err.strip().splitlines()) == 1 and "'set/a'" in r.err, r.err
    assert "GRID_HOME" not in r.err
    with grid.Client(str(home)) as c:
        assert c.list() == []
