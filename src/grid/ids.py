"""Content ids: a blob is named by the BLAKE3 hash of its uncompressed bytes."""

from __future__ import annotations

import blake3

DIGEST_SIZE = 32


def digest_of(data: bytes | bytearray | memoryview) -> bytes:
    """Return the 32-byte BLAKE3 digest of ``data``."""
    return blake3.blake3(data).digest()


class TreeHasher:
    """A digest of a whole tree: every path's kind, mode, mtime, size, link target and content
    ids, fed in walk order. Two versions with equal tree digests hold the same tree."""

    def __init__(self) -> None:
        self._h = blake3.blake3()

    def add(
        self,
        path: str,
        kind: int,
        mode: int,
        mtime_ns: int,
        size: int,
        target: str | None,
        digests: list[bytes],
    ) -> None:
        self._h.update(f"{path}\0{kind}\0{mode}\0{mtime_ns}\0{size}\0{target or ''}\0".encode())
        self._h.update(b"".join(digests))
        self._h.update(b"\n")

    def hexdigest(self) -> str:
        return str(self._h.hexdigest())
