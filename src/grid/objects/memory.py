"""In-memory object store for unit tests: same contract, no disk."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from grid.errors import NotFoundError
from grid.objects.base import Buffer, ObjectStore, validate_key


class MemoryStore(ObjectStore):
    """Objects held in a dict; thread-safe."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, parts: Sequence[Buffer]) -> int:
        data = b"".join(parts)
        with self._lock:
            self._objects[validate_key(key)] = data
        return len(data)

    def _lookup(self, key: str) -> bytes:
        try:
            return self._objects[validate_key(key)]
        except KeyError as exc:
            raise NotFoundError(f"object {key} not found", key=key) from exc

    def get(self, key: str) -> bytes:
        return self._lookup(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._lookup(key)[offset : offset + length]

    def size(self, key: str) -> int:
        return len(self._lookup(key))

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(validate_key(key), None)

    def list(self, prefix: str = "") -> Iterator[str]:
        with self._lock:
            keys = [k for k in self._objects if k.startswith(prefix)]
        yield from keys
