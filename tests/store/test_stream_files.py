"""Streaming a whole version (``Client.iter_files``, ``grid.store.streaming.stream_files``): every
blob is read into a ``bytes`` of its own and checked against its id before it is handed out,
so damage is an IntegrityError naming the file, and nothing wrong is ever yielded, even when
a pack changes under a stream that is already running."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

import grid
from grid.store import streaming
from grid.store.compression import RAW, ZSTD
from grid.store.manifest import BlobLocation
from grid.store.pack import MAGIC, pack_key


@pytest.fixture
def tree(client, tmp_path) -> dict[str, bytes]:
    """Version d:1 of 40 files of random bytes (stored raw) and 10 of text (compressed)."""
    src = tmp_path / "d"
    src.mkdir()
    files = {f"r{i:02d}.bin": os.urandom(20_000 + i) for i in range(40)}
    files.update({f"t{i:02d}.txt": b"line %d of text\n" % i * 2000 for i in range(10)})
    for name, data in files.items():
        (src / name).write_bytes(data)
    client.create(str(src), "d")
    return files


@pytest.fixture
def small_spans(monkeypatch):
    """Spans of ~64 KiB: a small version is read as many spans, most of them after the
    first file has been handed out."""
    monkeypatch.setattr(streaming, "_SPAN", 64 << 10)


def _blob(client, name: str) -> tuple[BlobLocation, str]:
    """The (only) blob of file ``name`` of d:1 and the path of the pack file holding it."""
    store = client._ctx.store
    manifest = store.open_manifest(client.version("d", 1).manifest_id)
    try:
        [loc] = manifest.blobs(manifest.stat(name))
    finally:
        manifest.close()
    return loc, str(store.objects.local_path(pack_key(loc.pack_id)))


def test_every_file_comes_back_whole_as_bytes(client, tree, small_spans):
    got = list(client.iter_files("d"))
    assert dict(got) == tree and len(got) == len(tree)
    assert all(type(data) is bytes for _, data in got)
    assert dict(client.iter_files("d", 1, prefix="t03.txt")) == {"t03.txt": tree["t03.txt"]}


@pytest.mark.parametrize(("name", "codec"), [("r17.bin", RAW), ("t04.txt", ZSTD)])
def test_a_damaged_blob_is_an_integrity_error_naming_its_file(
    client, tree, small_spans, name, codec
):
    loc, pack = _blob(client, name)
    assert loc.codec == codec
    with open(pack, "r+b") as f:
        f.seek(loc.offset + loc.stored_length // 2)
        f.write(b"\0\1\2\3")
    good = {}
    with pytest.raises(grid.IntegrityError, match=name) as caught:
        for path, data in client.iter_files("d"):
            good[path] = data
    assert caught.value.path == name and caught.value.digest == loc.digest.hex()
    assert name not in good and len(good) >= 10
    assert all(tree[p] == data for p, data in good.items())  # everything before it is right


def test_a_truncated_pack_is_an_integrity_error_naming_a_file(client, tree, small_spans):
    loc, pack = _blob(client, "r30.bin")
    os.truncate(pack, loc.offset + 100)
    with pytest.raises(grid.IntegrityError, match=r"r30\.bin: .*truncated"):
        for path, data in client.iter_files("d"):
            assert tree[path] == data


def test_a_missing_pack_is_an_integrity_error_naming_a_file(client, tree, small_spans):
    _, pack = _blob(client, "r00.bin")
    os.unlink(pack)
    with pytest.raises(grid.IntegrityError, match="is missing") as caught:
        list(client.iter_files("d"))
    assert caught.value.path in tree


def test_a_pack_replaced_under_a_running_stream_never_yields_wrong_bytes(
    client, tree, home, small_spans
):
    stream = client.iter_files("d")
    seen = dict([next(stream)])
    _, pack = _blob(client, "r35.bin")  # read long after the first span
    with open(pack, "rb") as f:
        damaged = bytearray(f.read())
    for at in range(len(MAGIC) + 64, len(damaged) - 200, 4096):
        damaged[at] ^= 0xFF  # a byte of (nearly) every blob
    with open(f"{pack}.new", "wb") as f:
        f.write(damaged)
    os.replace(f"{pack}.new", pack)  # what a writer replacing the object does
    try:
        for path, data in stream:
            seen[path] = data
    except grid.IntegrityError as exc:  # reads of the new file: the damage is found
        assert exc.path in tree and exc.path not in seen
    assert all(tree[p] == data for p, data in seen.items())
    stream.close()
    # a new reader opens the new file: its damage is found, never handed out
    with grid.Client(str(home)) as again, pytest.raises(grid.IntegrityError):
        for path, data in again.iter_files("d"):
            assert tree[path] == data


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE entries SET kind = 'file' WHERE name = 'r05.bin'",
        "UPDATE entries SET kind = x'01' WHERE name = 'r05.bin'",
        "UPDATE entries SET blobs = substr(blobs, 1, 20) WHERE name = 'r05.bin'",
        "UPDATE entries SET name = x'41' WHERE name = 'r05.bin'",
        "UPDATE entries SET parent = 999 WHERE name = 'r05.bin'",
        "DELETE FROM packs",
    ],
)
def test_a_damaged_manifest_row_is_an_integrity_error_not_a_skipped_file(client, tree, damage):
    path = client._ctx.store.manifest_path(client.version("d", 1).manifest_id)
    with sqlite3.connect(path) as db:
        db.execute(damage)
    with pytest.raises(grid.IntegrityError, match="damaged manifest"):
        list(client.iter_files("d"))


READER = """
import json, sys
import grid
with grid.Client(sys.argv[1]) as c:
    got = {p: len(d) for p, d in c.iter_files("d")}
    with c.open("d", 1, "r03.bin") as f:
        got["open"] = len(f.read())
    got["v"] = c.version("d", 1).number
    before = "sqlalchemy" in sys.modules
    got["list"] = [d.name for d in c.list()]  # not a reader's call: the catalog opens
print(json.dumps([got, before, "sqlalchemy" in sys.modules]))
"""


def test_an_embedded_reader_never_opens_the_catalog(client, tree, home):
    """Which version to read comes from the SQLite file (grid.catalog.quick_read): a process
    that only reads imports no SQLAlchemy, the first other call opens the catalog."""
    client.close()
    out = subprocess.run(
        [sys.executable, "-c", READER, str(home)], capture_output=True, text=True, check=True
    ).stdout
    got, sqlalchemy_for_reads, sqlalchemy_after = json.loads(out)
    assert {p: got[p] for p in tree} == {p: len(d) for p, d in tree.items()}
    assert got["open"] == len(tree["r03.bin"]) and got["v"] == 1 and got["list"] == ["d"]
    assert not sqlalchemy_for_reads and sqlalchemy_after


def test_a_client_of_a_new_home_still_creates_its_catalog_when_needed(home):
    with grid.Client(str(home)) as c:
        with pytest.raises(grid.DatastoreNotFoundError):
            list(c.iter_files("nothing"))
        assert c.list() == []
    assert (home / "catalog.db").exists()
