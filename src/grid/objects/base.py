"""The object-store contract every backend (local directory, S3, memory) fulfils.

Keys are relative, slash-separated names such as ``packs/ab/ab12...``: never absolute, never
containing ``..`` or empty segments. Objects are immutable once written: ``put`` of an existing key
replaces it atomically (readers see the old or the new bytes, never a mix), and is idempotent.
An object is durable (survives a power cut) once ``sync`` of its key has returned; backends whose
``put`` is durable by itself (S3) make ``sync`` a no-op.
Errors: a missing key raises ``grid.errors.NotFoundError``; any other failure raises
``grid.errors.StorageError`` (``transient=True`` where a retry may help, e.g. 5xx, throttling).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from grid.errors import NotFoundError, UsageError

Buffer = bytes | bytearray | memoryview

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


def validate_key(key: str) -> str:
    """Check that ``key`` is a safe relative object name and return it.

    Raises:
        UsageError: the key is absolute, empty, has ``.``/``..``/empty segments or odd characters.
    """
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or not _SEGMENT.match(p) for p in parts):
        raise UsageError(
            f"invalid object key {key!r}: must be relative, never /foo or ../foo",
            rule="object keys are relative names of [A-Za-z0-9._-] segments",
        )
    return key


class ObjectInfo(NamedTuple):
    """A listed object: its key, length and last write (seconds since the epoch, as the store
    records it)."""

    key: str
    size: int
    modified: float


class ObjectStore(ABC):
    """A flat namespace of immutable objects addressed by key."""

    @abstractmethod
    def put(self, key: str, parts: Sequence[Buffer]) -> int:
        """Store the concatenation of ``parts`` under ``key``; return its length.

        Atomic for readers; durable once ``sync([key])`` returns.
        """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the whole object. Raises NotFoundError if it does not exist."""

    @abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset``; shorter only at the end of the object."""

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return the bytes of each ``(offset, length)`` of ``key``, in order; each shorter
        only at the end of the object. ``ranges`` go forward without overlapping.

        The default fetches the span from the first offset to the last end with one
        ``get_range`` (one request to a remote store) and slices it; a store of local files
        reads each range straight into its own ``bytes`` instead.
        """
        if not ranges:
            return []
        start = ranges[0][0]
        end = max(offset + length for offset, length in ranges)
        span = self.get_range(key, start, end - start)
        return [span[offset - start : offset - start + length] for offset, length in ranges]

    @abstractmethod
    def size(self, key: str) -> int:
        """Return the object's length in bytes. Raises NotFoundError if missing."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (idempotent)."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, in no particular order, with
        its size and write time. Not for hot paths."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` only if no object has that key; return whether it was
        stored. Atomic where the store offers it (a conditional PUT, a hard link); durable."""

    def sync(self, keys: Sequence[str]) -> None:  # noqa: B027 - optional: no-op by default
        """Make the objects ``keys`` (already put) durable. Idempotent."""

    def put_file(self, key: str, path: str) -> int:
        """Store the content of the local file ``path`` under ``key``, durably; return its length.

        The default reads the file into memory; backends override it to stream.
        """
        with open(path, "rb") as f:
            return self.put(key, [f.read()])

    def copy(self, src: str, dst: str) -> int:
        """Store a copy of object ``src`` under ``dst`` (inside the store where it can: no
        bytes through this process); return its length. Durable.

        Raises:
            NotFoundError: ``src`` does not exist.
        """
        size = self.put(dst, [self.get(src)])
        self.sync([dst])
        return size

    def presign(
        self, key: str, method: str, seconds: int, *, create_only: bool = False
    ) -> str | None:
        """A URL that lets its holder ``GET``, ``HEAD`` or ``PUT`` object ``key`` for
        ``seconds`` without credentials; None where the store has no such URLs (a folder).
        ``create_only``: the PUT must carry ``If-None-Match: *`` (signed into the URL), so
        it cannot replace an object that exists."""
        return None

    def browser_may(self, origin: str, method: str) -> bool:
        """Whether a web page served from ``origin`` may send ``method`` to this store's
        presigned URLs (an S3 bucket's CORS rules allow it); False where there are none."""
        return False

    def exists(self, key: str) -> bool:
        """Return whether ``key`` exists."""
        try:
            self.size(key)
        except NotFoundError:
            return False
        return True

    def clean_partial(self, older_than: float = 3600.0) -> int:
        """Remove leftovers of writes that never finished (a process killed mid-put), older
        than ``older_than`` seconds; return how many. Default: the backend leaves none."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional: nothing to release by default
        """Release cached resources (open files, connections). Idempotent."""

    def local_path(self, key: str) -> str | None:
        """Return a filesystem path holding the object's bytes, if the backend has one."""
        return None
