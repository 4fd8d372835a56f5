"""Packs: many blobs in one object, in the order they were added, with a trailer that lists them.

Layout (docs/format.md, "Pack"): ``MAGIC`` | blob payloads | trailer entries | count (u32 LE) |
``TRAILER_MAGIC``. Each trailer entry is ``ENTRY`` (digest, offset, stored length, raw length,
codec). The trailer makes every pack self-describing, so the blob index can be rebuilt from packs.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from grid.errors import IntegrityError
from grid.objects.base import Buffer

MAGIC = b"GRIDPK01"
TRAILER_MAGIC = b"GRIDPKIX"
ENTRY = struct.Struct("<32sIIIB")
_TAIL = struct.Struct("<I8s")
FRAME_BYTES = len(MAGIC) + _TAIL.size  # a pack's bytes besides its blobs and trailer entries
TARGET_SIZE = 32 << 20


class PackedBlob(NamedTuple):
    """Where one blob sits inside its pack."""

    digest: bytes
    offset: int
    stored_length: int
    raw_length: int
    codec: int


def new_pack_id() -> str:
    """Return a fresh random pack id (32 hex digits)."""
    return secrets.token_hex(16)


def pack_key(pack_id: str) -> str:
    """Return the object key of a pack, fanned out by its first two hex digits."""
    return f"packs/{pack_id[:2]}/{pack_id}"


@dataclass
class PackBuilder:
    """Accumulates blob payloads for one pack without copying them."""

    pack_id: str = field(default_factory=new_pack_id)
    parts: list[Buffer] = field(default_factory=lambda: [MAGIC])
    blobs: list[PackedBlob] = field(default_factory=list)
    size: int = len(MAGIC)

    def add(self, digest: bytes, payload: Buffer, raw_length: int, codec: int) -> PackedBlob:
        """Append a blob and return its location."""
        blob = PackedBlob(digest, self.size, len(payload), raw_length, codec)
        self.parts.append(payload)
        self.blobs.append(blob)
        self.size += len(payload)
        return blob

    @property
    def full(self) -> bool:
        return self.size >= TARGET_SIZE

    def finish(self) -> list[Buffer]:
        """Return the parts of the finished pack object, trailer included."""
        trailer = b"".join(ENTRY.pack(*b) for b in self.blobs)
        return [*self.parts, trailer, _TAIL.pack(len(self.blobs), TRAILER_MAGIC)]


def trailer_span(tail: bytes) -> tuple[int, int]:
    """From the last bytes of a pack, return (blob count, trailer length)."""
    if len(tail) < _TAIL.size:
        raise IntegrityError("pack trailer is truncated")
    count, magic = _TAIL.unpack(tail[-_TAIL.size :])
    if magic != TRAILER_MAGIC:
        raise IntegrityError("not a grid pack: trailer magic missing")
    return count, count * ENTRY.size + _TAIL.size


def parse_trailer(trailer: bytes) -> list[PackedBlob]:
    """Decode a pack's trailer (entries plus tail) into blob locations."""
    count, length = trailer_span(trailer)
    if len(trailer) < length:
        raise IntegrityError("pack trailer is truncated")
    body = trailer[len(trailer) - length : len(trailer) - _TAIL.size]
    return [PackedBlob(*ENTRY.unpack_from(body, i * ENTRY.size)) for i in range(count)]
