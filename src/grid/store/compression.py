"""Per-blob compression: zstd only where it pays, decided cheaply from a sample.

Compressing incompressible bytes (JPEG, random, already-compressed Parquet pages) costs time and
saves nothing, so a blob is compressed only if a sample of it shrinks below ``_KEEP_RATIO`` and the
whole result does too. Known compressed formats are recognised by their magic bytes and skipped.
"""

from __future__ import annotations

import threading

import zstandard

from grid.errors import IntegrityError

RAW = 0
ZSTD = 1
PINNED = 255  # a piece of an object referenced where it is (grid.objects.pinned)

LEVEL = 1
_KEEP_RATIO = 0.9
_MIN_SIZE = 128
_SAMPLE = 16 * 1024
_COMPRESSED_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG",
    b"GIF8",
    b"PK\x03\x04",  # zip, docx, npz, jar
    b"\x1f\x8b",  # gzip
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\xfd7zXZ",  # xz
    b"BZh",  # bzip2
    b"\x04\x22\x4d\x18",  # lz4
    b"OggS",
    b"fLaC",
    b"ID3",  # mp3
)

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c: zstandard.ZstdCompressor | None = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=LEVEL)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def encode(data: bytes | memoryview) -> tuple[bytes | memoryview, int]:
    """Return ``(payload, codec)``: the bytes to store and how they are encoded."""
    n = len(data)
    if n < _MIN_SIZE or bytes(data[:4]).startswith(_COMPRESSED_MAGIC):
        return data, RAW
    c = _compressor()
    if n > 2 * _SAMPLE and len(c.compress(data[:_SAMPLE])) > _SAMPLE * _KEEP_RATIO:
        return data, RAW
    packed = c.compress(data)
    if len(packed) > n * _KEEP_RATIO:
        return data, RAW
    return packed, ZSTD


def decode(payload: bytes, codec: int, raw_length: int) -> bytes:
    """Return the original bytes of a stored blob.

    Raises:
        IntegrityError: unknown codec or a corrupt zstd frame.
    """
    if codec == RAW:
        return payload
    if codec != ZSTD:
        raise IntegrityError(f"unknown blob codec {codec}")
    try:
        claimed = zstandard.frame_content_size(payload)  # -1: not recorded
        if claimed not in (-1, raw_length):  # zstd would allocate what the frame claims
            raise IntegrityError(f"compressed blob claims {claimed} bytes, not {raw_length}")
        return _decompressor().decompress(payload, max_output_size=raw_length)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"corrupt compressed blob: {exc}") from exc
