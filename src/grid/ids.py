"""Content ids: a blob is named by the BLAKE3 hash of its uncompressed bytes."""

from __future__ import annotations

import blake3

DIGEST_SIZE = 32


def digest_of(data: bytes | bytearray | memoryview) -> bytes:
    """Return the 32-byte BLAKE3 digest of ``data``."""
    return blake3.blake3(data).digest()
