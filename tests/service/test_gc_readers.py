"""Issue 13.1: gc never breaks a reader of a live version. Repacking moves live blobs; a
reader that opened the version before (a snapshot as the mount uses, an open file,
iter_files) reads on through the old objects, which gc keeps until the reader is gone."""

from __future__ import annotations

import os

import pytest

import grid


@pytest.fixture(params=["local", "s3"])
def storage(request, home, monkeypatch):
    if request.param == "local":
        return None
    endpoint = request.getfixturevalue("s3_endpoint")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return f"s3://{request.getfixturevalue('s3_bucket')}/g"


def test_readers_opened_before_a_repack_read_on_after_it(home, tmp_path, storage):
    src = tmp_path / "d"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(24 << 20))
    k = os.urandom(8 << 20)
    (src / "k").write_bytes(k)
    (src / "small").write_bytes(b"s" * 5000)
    with grid.Client(str(home), storage_url=storage) as c:
        c.create(str(src), "g")
        (src / "big").unlink()
        c.create(str(src), "g")  # g:2 keeps k, in g:1's pack
        f = c.open("g", 2, "k")
        assert f.read(10) == k[:10]
        stream = c.iter_files("g", 2)
        snap = c.snapshot("g", 2)
        c.delete("g", 1)
        report = c.gc(grace=0)
        assert report.packs_repacked >= 1 and report.manifests_rewritten == 1
        assert report.kept_for_readers >= 2  # the old pack and g:2's old manifest
        # every reader started before the repack reads on, right bytes, no IntegrityError
        f.seek(4 << 20)
        assert f.read() == k[4 << 20 :]
        assert dict(stream) == {"k": k, "small": b"s" * 5000}
        entry = snap.manifest.stat("k")
        assert snap.read(entry, 1 << 20, 100) == k[1 << 20 : (1 << 20) + 100]
        assert c.read_bytes("g", 2, "k") == k  # a new reader: the new manifest
        assert c.gc(grace=0).kept_for_readers >= 2  # the old readers are still open
        f.close()
        snap.close()
        again = c.gc(grace=0)
        assert again.kept_for_readers == 0 and again.retired_deleted >= 2
        assert c.verify("g", 2).ok
        assert c.read_bytes("g", 2, "k") == k
