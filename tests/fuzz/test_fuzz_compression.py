"""The compression layer: a stored blob's codec and zstd frame (``grid.store.compression``)
and an archive's compressed stream (``grid.sources.inflate``). Damage gives IntegrityError or
ArchiveError, never zlib/lzma/zstd errors, MemoryError or a hang, and never wrong bytes."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from grid.errors import ArchiveError, IntegrityError
from grid.ids import digest_of
from grid.sources.archive_rules import ArchiveLimits
from grid.sources.inflate import Inflater
from grid.store.blob_check import verify_blob
from grid.store.compression import decode, encode
from grid.store.manifest import BlobLocation
from tests.fuzz.fuzzing import corpus, fuzz_settings, mutations, typed_or_nothing

DATA = b"grid datastores " * 400
FRAME = bytes(encode(DATA)[0])
PACKERS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


def zstd_claiming(size: int) -> bytes:
    """A zstd frame of 1000 bytes whose header claims ``size`` bytes (8-byte size field)."""
    frame = bytes(encode(b"a" * 1000)[0])
    assert frame[4] == 0x60  # single segment, 2-byte content size
    return frame[:4] + bytes([0xE0]) + size.to_bytes(8, "little") + frame[7:]


def check_blob(payload: bytes, codec: int = 1, raw_length: int = len(DATA)) -> None:
    """A stored blob verifies as exactly DATA, or is refused with an IntegrityError."""
    loc = BlobLocation("0" * 32, digest_of(DATA), 8, len(payload), raw_length, codec)
    out: list[bytes] = []
    exc = typed_or_nothing(lambda: out.append(verify_blob(loc, payload)))
    assert (exc is None and out == [DATA]) or isinstance(exc, IntegrityError)


@fuzz_settings(300)
@given(mutations(FRAME), st.sampled_from([0, 1, 1, 2, 255]), st.integers(0, (1 << 32) - 1))
def test_a_damaged_blob_never_verifies_as_other_bytes(payload, codec, raw_length):
    check_blob(payload, codec, raw_length if codec != 1 else len(DATA))
    exc = typed_or_nothing(lambda: decode(payload, codec, raw_length & 0xFFFFF))
    assert exc is None or isinstance(exc, IntegrityError)


@pytest.mark.parametrize("claimed", [1 << 40, 3 << 30, 999])
def test_a_blob_claiming_another_size_is_refused_without_allocating_it(claimed):
    """Bug found: zstd trusts the frame's content size over max_output_size, so a frame
    claiming 1 TiB raised MemoryError (3 GiB: allocated 3 GiB first)."""
    with pytest.raises(IntegrityError):
        decode(zstd_claiming(claimed), 1, 1000)


def inflate(data: bytes, kind: str) -> bytes:
    pipe = Inflater(io.BytesIO(data), kind, lambda: len(data), ArchiveLimits())
    try:
        return pipe.read()
    finally:
        pipe.close()


def check_stream(data: bytes, kind: str) -> None:
    out: list[bytes] = []
    exc = typed_or_nothing(lambda: out.append(inflate(data, kind)))
    assert exc is None or isinstance(exc, ArchiveError), exc


@pytest.mark.parametrize("kind", sorted(PACKERS))
def test_a_valid_stream_inflates(kind):
    assert inflate(PACKERS[kind](DATA), kind) == DATA


@pytest.mark.parametrize("kind", sorted(PACKERS))
@fuzz_settings(60)
@given(data=st.data())
def test_a_damaged_stream_fails_as_an_archive_error(kind, data):
    check_stream(data.draw(mutations(PACKERS[kind](DATA))), kind)


@pytest.mark.parametrize("data", corpus("blob"))
def test_blob_corpus(data):
    check_blob(data)


@pytest.mark.parametrize("data", corpus("stream"))
def test_stream_corpus(data):
    for kind in PACKERS:
        check_stream(data, kind)
