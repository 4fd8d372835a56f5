"""In-memory object store for unit tests: same contract, no disk."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from grid.errors import NotFoundError
from grid.objects.base import Buffer, ObjectInfo, ObjectStore, validate_key


class MemoryStore(ObjectStore):
    """Objects held in a dict; thread-safe."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()

    def put(self, key: str, parts: Sequence[Buffer]) -> int:
        data = b"".join(parts)
        with self._lock:
            self._objects[validate_key(key)] = data
            self._written[key] = time.time()
        return len(data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        with self._lock:
            if validate_key(key) in self._objects:
                return False
            self._objects[key], self._written[key] = bytes(data), time.time()
        return True

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

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            found = [
                ObjectInfo(k, len(v), self._written[k])
                for k, v in self._objects.items()
                if k.startswith(prefix)
            ]
        yield from found
