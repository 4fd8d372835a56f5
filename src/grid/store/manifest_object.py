"""How a finished manifest file is stored as an object: whole, or as a delta against an
earlier manifest (format 2.0, docs/format.md "Manifest objects").

A whole manifest is one zstd frame of the SQLite file. A delta is a zstd skippable frame naming
its chain of bases (the manifest it was made against first, then that one's bases), followed by
one zstd frame compressed with the base's SQLite file as a raw-content dictionary (zstd's
"patch-from"). A version changed by 1 % then costs about a sixth of its whole manifest: the rows
it shares with its base are matches, only the changed rows and shifted ids are literals.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from typing import BinaryIO

import zstandard

from grid.errors import IntegrityError

MAX_CHAIN = 8  # a delta's bases, at most: reading it materialises each of them
_READ_CHAIN = 32  # what a reader accepts (a writer may have used a larger cap)
MAX_BASE_BYTES = 256 << 20  # larger manifests are stored whole: the base is held in memory
_MAX_WINDOW_LOG = 30
_WHOLE_LEVEL = 3
_SKIPPABLE = 0x184D2A5B  # one of zstd's 16 skippable-frame magic numbers
_FRAME = struct.Struct("<II")
_TAG = b"GRIDDELTA"
_HEADER_MAX = 4096
_ID = re.compile(r"[0-9a-f]{32}")
SQLITE_MAGIC = b"SQLite format 3\x00"  # a bare SQLite file: format 1.0's manifest object
HEADER_READ = _FRAME.size + _HEADER_MAX  # bytes that hold any delta header


def delta_bases(head: bytes) -> list[str]:
    """The chain of bases named by a manifest object starting with ``head`` (at least its
    first ``HEADER_READ`` bytes, or the whole object): [] for a whole manifest.

    Raises:
        IntegrityError: a delta header that is malformed.
    """
    if len(head) < _FRAME.size or _FRAME.unpack_from(head)[0] != _SKIPPABLE:
        return []
    size = _FRAME.unpack_from(head)[1]
    body = head[_FRAME.size : _FRAME.size + size]
    try:
        if size > _HEADER_MAX or len(body) != size or not body.startswith(_TAG):
            raise ValueError("not a grid delta header")
        bases = json.loads(body[len(_TAG) :])["bases"]
        if not (
            isinstance(bases, list)
            and 0 < len(bases) <= _READ_CHAIN
            and all(isinstance(b, str) and _ID.fullmatch(b) for b in bases)
            and len(set(bases)) == len(bases)
        ):
            raise ValueError(f"bad chain {bases!r:.200}")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"damaged manifest delta header: {exc}") from exc
    return bases


def write_whole(src: BinaryIO, dst: BinaryIO) -> None:
    """Compress the manifest file ``src`` into ``dst`` as a whole manifest object."""
    size = os.fstat(src.fileno()).st_size
    zstandard.ZstdCompressor(level=_WHOLE_LEVEL, write_checksum=True).copy_stream(
        src, dst, size=size
    )


def write_delta(src: BinaryIO, dst: BinaryIO, base: bytes, bases: list[str]) -> None:
    """Write the manifest file ``src`` into ``dst`` as a delta against ``base`` (the SQLite
    bytes of ``bases[0]``, whose own chain is ``bases[1:]``)."""
    if not 0 < len(bases) <= MAX_CHAIN:
        raise ValueError(f"a delta names 1 to {MAX_CHAIN} bases, not {len(bases)}")
    header = _TAG + json.dumps({"bases": bases}, separators=(",", ":")).encode()
    dst.write(_FRAME.pack(_SKIPPABLE, len(header)) + header)
    size = os.fstat(src.fileno()).st_size
    # the window must reach back over the whole base (the dictionary) from the frame's end
    window = max(20, math.ceil(math.log2(len(base) + size + 1)))
    # one hash entry per 8 bytes of base: 7 MB (50,000 files) -> 2^20. Measured there: a 1 %
    # change 470 kB in 0.045 s, an unchanged tree 2 kB in 0.03 s; 2^22 saves 4 % of the bytes
    # in 4 x the time, btopt a fifth in 50 x
    table = min(24, max(17, math.ceil(math.log2(len(base) + 1)) - 3))
    params = zstandard.ZstdCompressionParameters(
        window_log=min(window, _MAX_WINDOW_LOG),
        hash_log=table,
        chain_log=table,
        search_log=1,
        min_match=6,
        target_length=64,
        strategy=zstandard.STRATEGY_DFAST,
        write_checksum=1,
        write_content_size=1,
    )
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    compressor = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)
    compressor.copy_stream(src, dst, size=size)


def fits_delta(base_size: int, size: int) -> bool:
    """Whether a manifest of ``size`` bytes may be stored as a delta on one of ``base_size``."""
    return base_size <= MAX_BASE_BYTES and base_size + size < (1 << _MAX_WINDOW_LOG)


def unpack(src: BinaryIO, dst: BinaryIO, base: str | None = None) -> None:
    """Unpack the manifest object ``src`` into the SQLite file ``dst``: a whole one, a bare
    SQLite file (format 1.0), or a delta given the path of its materialised ``base``.

    Raises:
        IntegrityError: damaged or truncated (a frame records its size and a checksum), or a
            delta without its base.
    """
    head = src.read(HEADER_READ)
    if head.startswith(SQLITE_MAGIC):
        dst.write(head)
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        return
    bases = delta_bases(head)
    start = 0
    dictionary = None
    if bases:
        if base is None:
            raise IntegrityError("a delta manifest cannot be read without its base manifest")
        start = _FRAME.size + _FRAME.unpack_from(head)[1]
        with open(base, "rb") as f:
            dictionary = zstandard.ZstdCompressionDict(
                f.read(), dict_type=zstandard.DICT_TYPE_RAWCONTENT
            )
    src.seek(start)
    try:
        expected = zstandard.frame_content_size(src.read(18))
        src.seek(start)
        decompressor = zstandard.ZstdDecompressor(
            dict_data=dictionary, max_window_size=1 << _MAX_WINDOW_LOG
        )
        _, written = decompressor.copy_stream(src, dst)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"damaged manifest object: {exc}") from exc
    if expected < 0 or written != expected:
        raise IntegrityError(f"damaged manifest object: unpacked {written} of {expected} bytes")
