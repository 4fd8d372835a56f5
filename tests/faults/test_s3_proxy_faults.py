"""Bad peers (issue 18): grid on S3 storage (SeaweedFS) through a proxy that fails requests.

Creates retry through a failing request and succeed, or fail with one clear StorageError and
no succeeded version; reads never return wrong bytes and never hang: a flipped, cut or
stalled response is fetched again or reported.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid

import pytest

import grid
from grid.errors import IntegrityError, StorageError
from grid.objects import s3
from tests.faults.s3_proxy import FaultProxy

TIMEOUT = 1.0  # the clients' connect and read timeouts here: each stall outlasts them


@pytest.fixture(scope="module")
def proxy(seaweedfs_endpoint):
    """The proxy in front of SeaweedFS; clients here give up on a silent store after TIMEOUT."""
    with pytest.MonkeyPatch.context() as mp, FaultProxy(seaweedfs_endpoint) as p:
        mp.setattr(s3, "READ_TIMEOUT", TIMEOUT)
        mp.setattr(s3, "CONNECT_TIMEOUT", TIMEOUT)
        yield p


@pytest.fixture
def faults(proxy):
    """The proxy, its rules and log cleared after the test."""
    yield proxy
    proxy.clear()
    proxy.log.clear()


def _bucket(endpoint: str) -> str:
    import boto3

    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/team"


@pytest.fixture
def storage(seaweedfs_endpoint):
    return _bucket(seaweedfs_endpoint)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    files = {"big.bin": os.urandom(3 << 20), "sub/small.txt": b"hello\n" * 1000, "empty": b""}
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    return root, files


def _client(home, storage, proxy) -> grid.Client:
    """A client whose every S3 request goes through ``proxy``, caches emptied first: each
    read goes to the store."""
    shutil.rmtree(home / "cache", ignore_errors=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", proxy.url)
        return grid.Client(str(home), storage_url=storage, fsync=False, cache_size=0)


def _id(value: object) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        return ",".join(value) or "plain"
    return "+".join(value) if isinstance(value, tuple) else str(value).rstrip("/")


# -- creates ------------------------------------------------------------------------------------

WRITE_FAULTS = [  # (fault, its options, the key it hits)
    ("500", {}, "packs/"),
    ("500", {"after": True}, "manifests/"),  # the store stored it, the client hears an error
    ("500", {"after": True}, "claim.json"),  # a conditional PUT: its retry is refused (412)
    ("slowdown", {}, "packs/"),
    ("reset_request", {}, "packs/"),
    ("reset_response", {}, "manifests/"),
    ("reset_response", {}, "claim.json"),
    ("stall", {"stall": 10 * TIMEOUT}, "packs/"),
]


@pytest.mark.parametrize(("kind", "options", "target"), WRITE_FAULTS, ids=_id)
def test_a_create_retries_through_one_failed_write(
    kind, options, target, faults, storage, tree, home
):
    root, files = tree
    rule = faults.inject(kind, method="PUT", key=target, **options)
    start = time.monotonic()
    with _client(home, storage, faults) as c:
        v = c.create(str(root), name="d")
        assert v.status == "succeeded"
    assert time.monotonic() - start < 8 * TIMEOUT  # a stall is cut short by the read timeout
    assert rule.hits == 1 and len(faults.requests("PUT", target)) >= 2  # retried
    faults.clear()
    with _client(home, storage, faults) as c:
        assert dict(c.iter_files("d", 1)) == files  # each blob checked against its hash


def test_a_create_against_a_store_that_keeps_failing_fails_cleanly(faults, storage, tree, home):
    root, files = tree
    rule = faults.inject("503", method="PUT", key="packs/", times=0)
    with _client(home, storage, faults) as c:
        with pytest.raises(StorageError) as caught:
            c.create(str(root), name="d")
        assert [v.status for v in c.versions("d")] == ["failed"]  # none succeeded-but-broken
    error = caught.value
    assert type(error) is StorageError and error.code == "storage" and error.transient
    assert error.key.startswith("packs/") and "try again later" in str(error)
    assert rule.hits == s3.MAX_ATTEMPTS  # one pack, every attempt refused, nothing after
    faults.clear()
    with _client(home, storage, faults) as c:  # the store is back: a rerun succeeds
        v = c.create(str(root), name="d")
        assert v.status == "succeeded" and v.number == 2
        assert dict(c.iter_files("d", 2)) == files


# -- reads --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored(proxy, seaweedfs_endpoint, tmp_path_factory):
    """(home, storage URL, files) of a datastore ``d``, version 1, stored through the proxy."""
    home = tmp_path_factory.mktemp("stored") / "home"
    storage = _bucket(seaweedfs_endpoint)
    root = tmp_path_factory.mktemp("src")
    files = {f"f{i}.bin": os.urandom(700_000 + i) for i in range(4)}
    files["small.txt"] = b"hello\n" * 100
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    with _client(home, storage, proxy) as c:
        c.create(str(root), name="d")
    return home, storage, files


def _read(c, op: str, files: dict[str, bytes], tmp_path):
    """Read through ``op``; return what it read and what it should have read."""
    if op == "read_bytes":
        return c.read_bytes("d", 1, "f2.bin"), files["f2.bin"]
    if op == "open":
        with c.open("d", 1, "f2.bin") as f:
            f.seek(300_000)
            return f.read(500_000), files["f2.bin"][300_000:800_000]
    if op == "download":
        dest = tmp_path / f"download-{uuid.uuid4().hex[:6]}"
        c.download("d", 1, str(dest))
        return {p.name: p.read_bytes() for p in dest.iterdir()}, files
    assert op == "verify"
    return c.verify("d", 1).damaged, {}


READ_FAULTS = [  # (fault, the key it hits, the reads it is tried on)
    ("500", "packs/", ("read_bytes", "verify")),
    ("503", "manifests/", ("open", "download")),
    ("slowdown", "packs/", ("download",)),
    ("stall", "packs/", ("read_bytes",)),
    ("stall", "manifests/", ("verify",)),
    ("reset_response", "packs/", ("read_bytes", "download", "open")),
    ("reset_response", "manifests/", ("verify",)),
    ("truncate", "packs/", ("open", "verify", "download")),
    ("truncate", "manifests/", ("read_bytes",)),
    ("stall_body", "packs/", ("download", "read_bytes")),
    ("stall_body", "manifests/", ("open",)),
    ("flip", "packs/", ("read_bytes", "open", "download", "verify")),
    ("flip", "manifests/", ("download", "verify")),
]


@pytest.mark.parametrize(("kind", "target", "ops"), READ_FAULTS, ids=_id)
def test_a_read_through_one_bad_response_gets_the_right_bytes_or_a_clear_error(
    kind, target, ops, faults, stored, tmp_path
):
    home, storage, files = stored
    for op in ops:
        rule = faults.inject(kind, method="GET", key=target, stall=10 * TIMEOUT)
        start = time.monotonic()
        with _client(home, storage, faults) as c:
            if kind == "flip" and target == "packs/" and op != "verify":
                # a ranged GET has no checksum: the blob's hash catches the flip, and the
                # caller's next read gets the right bytes
                with pytest.raises(IntegrityError, match="does not match its id"):
                    _read(c, op, files, tmp_path)
            got, expected = _read(c, op, files, tmp_path)  # verify re-reads a damaged blob
            assert got == expected, op
        assert rule.hits == 1, op
        assert time.monotonic() - start < 8 * TIMEOUT, op  # a stall is cut short
        faults.clear()


LASTING_FAULTS = [  # (fault, the key it hits, what a read raises)
    ("flip", "packs/", IntegrityError),
    ("flip", "manifests/", IntegrityError),
    ("truncate", "packs/", StorageError),
    ("reset_response", "manifests/", StorageError),
    ("stall_body", "packs/", StorageError),
    pytest.param("stall", "packs/", StorageError, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("kind", "target", "error"), LASTING_FAULTS, ids=_id)
def test_a_read_against_a_lasting_fault_is_a_clear_error_never_wrong_bytes(
    kind, target, error, faults, stored
):
    home, storage, files = stored
    rule = faults.inject(kind, method="GET", key=target, times=0, stall=30 * TIMEOUT)
    start = time.monotonic()
    with _client(home, storage, faults) as c:
        with pytest.raises(error) as caught:
            c.read_bytes("d", 1, "f2.bin")
        message = str(caught.value)
        assert "try again" in message or "does not match its id" in message
        if kind == "flip" and target == "packs/":
            damaged = c.verify("d", 1).damaged  # each blob re-read alone, damaged each time
            assert set(damaged) == set(files)
    assert time.monotonic() - start < 25 * TIMEOUT and rule.hits >= s3.BODY_TRIES


@pytest.mark.parametrize("kind", ["500", "reset_response"])
def test_a_conditional_put_whose_answer_was_lost_is_still_ours(kind, faults, storage):
    """The first attempt stored the object but its answer was lost: the retry is refused
    (412), yet the object holds our bytes, so we stored it."""
    bucket, prefix = s3.parse_url(storage)
    store = s3.S3Store(bucket, prefix, endpoint_url=faults.url)
    rule = faults.inject(kind, method="PUT", key="mine", after=True)
    assert store.put_if_absent("mine", b"ours") and rule.hits == 1
    assert store.get("mine") == b"ours"
    assert not store.put_if_absent("mine", b"ours")  # it exists now: nobody stores it again
