"""Manifests, as a reader meets them in its cache and a team-mode server meets a client's
upload: a damaged zstd object, a damaged SQLite file, or well-formed SQLite holding nonsense
rows. Every read gives an IntegrityError (or PathNotFoundError for a path it lacks), never a
sqlite3, struct, Key, Type or Unicode error."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from grid.errors import IntegrityError, PathNotFoundError
from grid.store.blob_check import unpacked_manifest
from grid.store.manifest import DIR, FILE, SYMLINK, encode_blobs
from grid.store.manifest_reader import ManifestReader
from grid.store.manifest_writer import ManifestWriter
from tests.fuzz.fuzzing import corpus, fuzz_settings, mutations, typed_or_nothing

SCRATCH = tempfile.mkdtemp(prefix="grid-fuzz-manifest-")
EXPECTED = (IntegrityError, PathNotFoundError)


def valid_sqlite() -> bytes:
    path = os.path.join(SCRATCH, "valid.sqlite")
    w = ManifestWriter(path)
    p = w.pack_number("a" * 32)
    d = w.add(0, "data", DIR, 0, 0o40755, 1)
    w.add(d, "one.txt", FILE, 3, 0o100644, 2, blobs=encode_blobs([(p, b"\1" * 32, 8, 3, 3, 0)]))
    w.add(d, "link", SYMLINK, 7, 0o120777, 3, target="one.txt")
    w.add(0, "up", SYMLINK, 2, 0o120777, 4, target="..")
    w.finish({"datastore": "fuzz", "version": "1", "files": "1", "bytes": "3"})
    with open(path, "rb") as f:
        return f.read()


SQLITE = valid_sqlite()
OBJECT = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(SQLITE)
PATHS = ["", "data", "data/one.txt", "data/link", "up", "up/x", "data/../data/link/", "nope"]


def read_all(m: ManifestReader) -> None:
    """Every query a reader, a verify, a gc or a server's commit check makes."""
    for entry in m.walk():
        _ = entry.kind_name, entry.name
        m.blobs(entry)
    for path in PATHS:
        for call in (m.stat, m.resolve, m.listdir, m.list_plain):
            with contextlib.suppress(PathNotFoundError):
                call(path)
    for entry_id in range(6):
        try:
            m.entry(entry_id)
            m.children(entry_id)
            m.count_children(entry_id)
            m.path_of(entry_id)
        except PathNotFoundError:
            pass
    _ = m.pack_ids, m.meta


def check_object(data: bytes) -> None:
    """A manifest object (zstd frame, or a bare SQLite file as 1.0 wrote)."""

    def parse() -> None:
        with unpacked_manifest(data, SCRATCH) as m:
            read_all(m)

    exc = typed_or_nothing(parse)
    assert exc is None or isinstance(exc, EXPECTED), exc


def check_file(data: bytes) -> None:
    """A manifest file in the local cache."""
    path = os.path.join(SCRATCH, "cached.sqlite")
    with open(path, "wb") as f:
        f.write(data)
    readers: list[ManifestReader] = []

    def parse() -> None:
        readers.append(ManifestReader(path))
        read_all(readers[0])

    try:
        exc = typed_or_nothing(parse)
        assert exc is None or isinstance(exc, EXPECTED), exc
    finally:
        for m in readers:
            m.close()


def test_the_valid_manifest_reads():
    with unpacked_manifest(OBJECT, SCRATCH) as m:
        read_all(m)
        assert [e.path for e in m.walk()] == ["data", "data/one.txt", "data/link", "up"]


@fuzz_settings(150)
@given(mutations(OBJECT))
def test_a_damaged_manifest_object_is_refused(data):
    check_object(data)


@fuzz_settings(150)
@given(mutations(SQLITE))
def test_a_damaged_manifest_file_is_refused(data):
    check_file(data)


anything = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.binary(max_size=120),
)
rows = st.lists(
    st.tuples(
        st.integers(1, 8),
        st.one_of(st.integers(0, 8), anything),
        st.one_of(st.sampled_from(["a", "b", "..", ""]), anything),
        st.one_of(st.integers(-1, 3), anything),
        anything,
        anything,
        anything,
        st.one_of(st.sampled_from(["a", "/x", "..", "a/b"]), anything),
        st.one_of(st.binary(max_size=100).map(lambda b: b[: len(b) // 49 * 49]), anything),
    ),
    max_size=8,
    unique_by=lambda r: r[0],
)


@fuzz_settings(150)
@given(
    rows,
    st.dictionaries(st.integers(-1, 3) | anything, st.text(max_size=4) | anything, max_size=3),
    st.sampled_from(["1.2", "1", "2.0", "x", "", "1.x", "١"]),
)
def test_a_manifest_of_nonsense_rows_is_refused(entries, packs, version):
    """Well-formed SQLite a client could upload, holding whatever values it likes."""
    path = os.path.join(SCRATCH, "rows.sqlite")
    if os.path.exists(path):
        os.unlink(path)
    db = sqlite3.connect(path)
    db.executescript(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
        "CREATE TABLE meta (key, value); CREATE TABLE packs (no, name);"
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, parent, name, kind, size, mode,"
        " mtime_ns, target, blobs);"
    )
    db.execute("INSERT INTO meta VALUES ('format_version', ?)", (version,))
    db.executemany("INSERT INTO packs VALUES (?, ?)", list(packs.items()))
    db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
    db.commit()
    db.close()
    with open(path, "rb") as f:
        check_file(f.read())


@pytest.mark.parametrize("data", corpus("manifest"))
def test_manifest_corpus(data):
    """Each is kept as the manifest object a store holds (zstd of the SQLite file)."""
    check_object(data)
    check_file(zstandard.ZstdDecompressor().decompress(data))


def test_scratch_files_are_removed():
    check_object(b"\x28\xb5\x2f\xfd" + bytes(20))
    check_object(OBJECT[:-9])
    assert not [n for n in os.listdir(SCRATCH) if n.startswith("manifest-")]
