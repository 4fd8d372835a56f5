"""Chunking, compression, packs and manifests in isolation."""

from __future__ import annotations

import io
import os

import pytest

from grid.errors import FormatVersionError, IntegrityError, PathNotFoundError
from grid.ids import digest_of
from grid.store import chunker, compression
from grid.store.manifest import DIR, FILE, ROOT_ID
from grid.store.manifest_reader import ManifestReader
from grid.store.manifest_writer import ManifestWriter
from grid.store.pack import PackBuilder, parse_trailer


def test_chunks_cover_the_file_exactly_and_respect_bounds():
    data = os.urandom(37 << 20)  # spans several read segments
    chunks = [bytes(c) for c in chunker.iter_chunks(io.BytesIO(data))]
    assert b"".join(chunks) == data
    assert all(len(c) <= chunker.MAX_CHUNK for c in chunks)
    assert all(len(c) >= chunker.MIN_CHUNK for c in chunks[:-1])


def test_cut_points_follow_content_so_an_insert_changes_few_chunks():
    data = os.urandom(20 << 20)
    edited = data[: 9 << 20] + b"inserted bytes" + data[9 << 20 :]
    before = {digest_of(c) for c in chunker.iter_chunks(io.BytesIO(data))}
    after = [digest_of(c) for c in chunker.iter_chunks(io.BytesIO(edited))]
    changed = [d for d in after if d not in before]
    assert 1 <= len(changed) <= 2


def test_segment_pool_reuses_only_released_buffers():
    pool = chunker.SegmentPool(keep=4)
    buf = pool.get()
    pool.put(buf)
    view = memoryview(buf)[:10]
    assert pool.get() is not buf  # still exported through `view`
    view.release()
    assert pool.get() is buf


def test_read_small_handles_growth():
    f = io.BytesIO(b"abcdef")
    assert chunker.read_small(f, 3) == b"abcdef"


def test_random_bytes_are_stored_raw_and_text_compressed():
    rnd = os.urandom(200_000)
    payload, codec = compression.encode(rnd)
    assert codec == compression.RAW and payload is rnd
    text = b"the same line again\n" * 10_000
    payload, codec = compression.encode(text)
    assert codec == compression.ZSTD and len(payload) < len(text) // 10
    assert compression.decode(payload, codec, len(text)) == text


def test_jpeg_magic_skips_compression_even_if_compressible():
    data = b"\xff\xd8\xff\xe0" + b"\0" * 100_000
    assert compression.encode(data)[1] == compression.RAW


def test_corrupt_zstd_frame_is_an_integrity_error():
    with pytest.raises(IntegrityError):
        compression.decode(b"\x28\xb5\x2f\xfdgarbage", compression.ZSTD, 10)
    with pytest.raises(IntegrityError):
        compression.decode(b"x", 9, 1)


def test_pack_trailer_lists_every_blob():
    pack = PackBuilder()
    blobs = [os.urandom(n) for n in (10, 1000, 5)]
    placed = [pack.add(digest_of(b), b, len(b), 0) for b in blobs]
    obj = b"".join(pack.finish())
    assert parse_trailer(obj) == placed
    for blob, loc in zip(blobs, placed, strict=True):
        assert obj[loc.offset : loc.offset + loc.stored_length] == blob
    with pytest.raises(IntegrityError):
        parse_trailer(obj[:-1] + b"Z")


def _manifest(tmp_path):
    w = ManifestWriter(str(tmp_path / "m.sqlite"))
    d = w.add(ROOT_ID, "train", DIR, 0, 0o40755, 1)
    sub = w.add(d, "cats", DIR, 0, 0o40755, 1)
    for i in range(1500):
        w.add(sub, f"{i:05d}.jpg", FILE, i, 0o100644, 2, None, b"")
    w.add(ROOT_ID, "readme", FILE, 0, 0o100644, 3, None, b"")
    w.finish({"datastore": "x"})
    return ManifestReader(str(tmp_path / "m.sqlite"))


def test_manifest_lookup_and_listing(tmp_path):
    m = _manifest(tmp_path)
    assert [e.name for e in m.listdir("")] == ["readme", "train"]
    listing = m.listdir("train/cats")
    assert len(listing) == 1500 and listing[0].path == "train/cats/00000.jpg"
    assert m.stat("/train/cats/01499.jpg").size == 1499
    assert m.stat("").kind == DIR
    with pytest.raises(PathNotFoundError):
        m.stat("train/nope")
    with pytest.raises(PathNotFoundError):
        m.listdir("readme")
    assert [e.path for e in m.walk()][:3] == ["train", "train/cats", "train/cats/00000.jpg"]


def test_manifest_lookup_uses_the_index(tmp_path):
    m = _manifest(tmp_path)
    plan = m._db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM entries WHERE parent = ? AND name = ?", (1, "x")
    ).fetchall()
    assert "entries_by_parent" in str(plan)


def test_newer_manifest_major_is_refused(tmp_path):
    _manifest(tmp_path).close()
    import sqlite3

    db = sqlite3.connect(tmp_path / "m.sqlite")
    db.execute("UPDATE meta SET value = '4.0' WHERE key = 'format_version'")
    db.commit()
    db.close()
    with pytest.raises(FormatVersionError):
        ManifestReader(str(tmp_path / "m.sqlite"))


def test_unpacked_manifest_opens_a_stored_manifest_and_leaves_no_file(tmp_path):
    import zstandard

    from grid.store.blob_check import unpacked_manifest

    _manifest(tmp_path).close()
    data = zstandard.ZstdCompressor().compress((tmp_path / "m.sqlite").read_bytes())
    scratch = tmp_path / "scratch"
    with unpacked_manifest(data, str(scratch)) as m:
        assert [e.name for e in m.listdir("")] == ["readme", "train"]
    assert os.listdir(scratch) == []
    for bad in (b"", b"not zstd at all", data[: len(data) // 2]):
        with pytest.raises(IntegrityError), unpacked_manifest(bad, str(scratch)):
            pass
    assert os.listdir(scratch) == []
