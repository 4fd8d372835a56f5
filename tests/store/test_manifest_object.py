"""Manifest objects (format 2.0): whole ones and deltas against a base, and every way a
stored one can be wrong: a damaged header, a delta read without its base or against the
wrong base, truncation, a chain that loops."""

from __future__ import annotations

import io
import json
import os
import struct

import pytest

from grid.errors import IntegrityError
from grid.store.blob_check import unpacked_manifest
from grid.store.manifest import FILE, encode_blobs
from grid.store.manifest_object import (
    MAX_CHAIN,
    delta_bases,
    unpack,
    write_delta,
    write_whole,
)
from grid.store.manifest_reader import ManifestReader
from grid.store.manifest_writer import ManifestWriter

IDS = [f"{i:032x}" for i in range(1, 12)]


def _manifest(path, names: list[str], packs: dict[int, str] | None = None) -> str:
    w = ManifestWriter(str(path), packs)
    for i, name in enumerate(names):
        no = w.pack_number(f"{i % 3:032x}")
        digest = bytes([i % 256]) * 32
        w.add(0, name, FILE, 10, 0o100644, i, None, encode_blobs([(no, digest, 0, 10, 10, 0)]))
    w.finish({"datastore": "d", "version": "1", "tree_digest": "x"})
    return str(path)


def _delta(tmp_path, base_names, names, bases=None) -> tuple[bytes, str, str]:
    base = _manifest(tmp_path / "base", base_names)
    new = _manifest(tmp_path / "new", names)
    out = io.BytesIO()
    with open(new, "rb") as src, open(base, "rb") as b:
        write_delta(src, out, b.read(), bases or [IDS[0]])
    return out.getvalue(), base, new


def test_a_delta_rebuilds_the_manifest_byte_for_byte_and_is_small(tmp_path):
    names = [f"file-{i:05d}.jpg" for i in range(5000)]
    changed = [*names[:2000], "new-file.jpg", *names[2001:]]
    data, base, new = _delta(tmp_path, names, changed)
    whole = io.BytesIO()
    with open(new, "rb") as src:
        write_whole(src, whole)
    assert len(data) < len(whole.getvalue()) / 4
    assert delta_bases(data) == [IDS[0]]
    assert delta_bases(whole.getvalue()) == []
    out = io.BytesIO()
    unpack(io.BytesIO(data), out, base)
    with open(new, "rb") as f:
        assert out.getvalue() == f.read()


def test_a_delta_without_its_base_or_against_another_is_refused(tmp_path):
    data, base, _new = _delta(tmp_path, ["a", "b", "c"], ["a", "c", "d"])
    with pytest.raises(IntegrityError, match="without its base"):
        unpack(io.BytesIO(data), io.BytesIO())
    other = _manifest(tmp_path / "other", ["x", "y"])
    with pytest.raises(IntegrityError, match="damaged"):
        unpack(io.BytesIO(data), io.BytesIO(), other)
    with pytest.raises(IntegrityError, match="damaged"):
        unpack(io.BytesIO(data[:-7]), io.BytesIO(), base)


def test_a_server_refuses_an_uploaded_delta(tmp_path):
    data, _base, _new = _delta(tmp_path, ["a"], ["a", "b"])
    scratch = str(tmp_path / "scratch")
    with pytest.raises(IntegrityError, match="without its base"), unpacked_manifest(data, scratch):
        pass
    assert os.listdir(tmp_path / "scratch") == []


@pytest.mark.parametrize(
    "header",
    [
        b"GRIDDELTA{}",
        b"GRIDDELTA" + json.dumps({"bases": []}).encode(),
        b"GRIDDELTA" + json.dumps({"bases": ["../../etc/passwd"]}).encode(),
        b"GRIDDELTA" + json.dumps({"bases": [IDS[0], IDS[0]]}).encode(),
        b"GRIDDELTA" + json.dumps({"bases": IDS[:1] * 40}).encode(),
        b"GRIDDELTA" + json.dumps({"bases": "abc"}).encode(),
        b"GRIDDELTA not json",
        b"SOMETHING ELSE",
    ],
)
def test_a_damaged_delta_header_is_an_integrity_error(header):
    data = struct.pack("<II", 0x184D2A5B, len(header)) + header + b"\x28\xb5\x2f\xfd"
    with pytest.raises(IntegrityError, match="delta header"):
        delta_bases(data)
    with pytest.raises(IntegrityError):
        unpack(io.BytesIO(data), io.BytesIO(), None)


def test_a_header_longer_than_its_object_is_refused():
    data = struct.pack("<II", 0x184D2A5B, 4000) + b"GRIDDELTA{"
    with pytest.raises(IntegrityError, match="delta header"):
        delta_bases(data)


def test_a_writer_keeps_at_most_the_chain_cap(tmp_path):
    base = _manifest(tmp_path / "base", ["a"])
    with open(base, "rb") as src, open(base, "rb") as b, pytest.raises(ValueError):
        write_delta(src, io.BytesIO(), b.read(), IDS[: MAX_CHAIN + 1])


def test_a_seeded_writer_keeps_the_base_numbers_and_lists_only_packs_it_uses(tmp_path):
    packs = {0: "a" * 32, 3: "b" * 32, 7: "c" * 32}
    w = ManifestWriter(str(tmp_path / "m"), packs)
    assert w.pack_number("b" * 32) == 3
    assert w.pack_number("d" * 32) == 8  # new packs come after the base's numbers
    assert w.pack_number("b" * 32) == 3
    assert w.pack_ids == ["b" * 32, "d" * 32]
    w.finish({})
    reader = ManifestReader(str(tmp_path / "m"))
    assert reader.pack_numbers == {3: "b" * 32, 8: "d" * 32}
    reader.close()
