"""Pack objects and trailers, as a reader, a recovering create, a server checking an upload and
an index learning another machine's packs meet them: damaged bytes give an IntegrityError,
never another exception, and never blobs whose bytes differ from their ids."""

from __future__ import annotations

import pytest
from hypothesis import given

from grid.errors import IntegrityError
from grid.ids import digest_of
from grid.store.blob_check import check_pack
from grid.store.compression import decode, encode
from grid.store.index import BlobIndex
from grid.store.pack import PackBuilder, parse_trailer, trailer_span
from tests.fuzz.fuzzing import corpus, fuzz_settings, mutations, typed_or_nothing

CONTENTS = [b"", b"x", b"grid " * 100, bytes(range(256)) * 3, b"\0" * 5000]


def valid_pack() -> bytes:
    builder = PackBuilder(pack_id="0" * 32)
    for data in CONTENTS:
        payload, codec = encode(data)
        builder.add(digest_of(data), bytes(payload), len(data), codec)
    return b"".join(bytes(p) for p in builder.finish())


VALID = valid_pack()


def check(data: bytes) -> None:
    """Every way a pack is parsed; whatever parses must hold blobs matching their ids."""
    blobs: list = []

    def parse() -> None:
        blobs.extend(check_pack("0" * 32, data))

    exc = typed_or_nothing(parse)
    if exc is not None:
        assert isinstance(exc, IntegrityError)
    for b in blobs:
        payload = data[b.offset : b.offset + b.stored_length]
        assert digest_of(decode(payload, b.codec, b.raw_length)) == b.digest
    for tail in (data, data[-12:]):
        for fn in (trailer_span, parse_trailer):
            exc = typed_or_nothing(lambda fn=fn, tail=tail: fn(tail))
            assert exc is None or isinstance(exc, IntegrityError)


def test_the_valid_pack_checks():
    assert [b.raw_length for b in check_pack("0" * 32, VALID)] == [len(c) for c in CONTENTS]


@fuzz_settings(300)
@given(mutations(VALID))
def test_a_damaged_pack_is_refused_or_right(data):
    check(data)


@fuzz_settings(100)
@given(mutations(VALID[-(45 * len(CONTENTS) + 12) :]))
def test_an_index_learns_only_well_formed_trailers(tmp_path_factory, trailer):
    """A trailer another machine or a server reports is parsed before anything is indexed."""
    index = BlobIndex(str(tmp_path_factory.mktemp("index") / "i.sqlite"))
    try:
        exc = typed_or_nothing(lambda: index.learn_packs([("1" * 32, len(VALID), trailer)]))
        assert exc is None or isinstance(exc, IntegrityError)
        if exc is not None:
            assert not index.has_packs(["1" * 32])
    finally:
        index.close()


@pytest.mark.parametrize("data", corpus("pack"))
def test_pack_corpus(data):
    check(data)
