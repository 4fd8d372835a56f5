"""Fault injection for tests: a wrapper that fails chosen calls of any backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from grid.errors import StorageError
from grid.objects.base import Buffer, ObjectInfo, ObjectStore


class FaultyStore(ObjectStore):
    """Delegates to ``inner`` but raises ``error()`` from the ``fail_put_after``-th put on.

    Args:
        inner: the real backend.
        fail_put_after: number of puts that succeed before every further put fails.
        error: factory of the exception to raise (default: a transient StorageError).
    """

    def __init__(
        self,
        inner: ObjectStore,
        *,
        fail_put_after: int | None = None,
        error: Callable[[], Exception] | None = None,
    ) -> None:
        self.inner = inner
        self.fail_put_after = fail_put_after
        self.error = error or (lambda: StorageError("injected fault", transient=True))
        self.puts = 0
        self._lock = threading.Lock()

    def put(self, key: str, parts: Sequence[Buffer]) -> int:
        with self._lock:
            self.puts += 1
            failing = self.fail_put_after is not None and self.puts > self.fail_put_after
        if failing:
            raise self.error()
        return self.inner.put(key, parts)

    def sync(self, keys: Sequence[str]) -> None:
        self.inner.sync(keys)

    def put_file(self, key: str, path: str) -> int:
        return self.inner.put_file(key, path)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        return self.inner.get_ranges(key, ranges)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(key, data)

    def close(self) -> None:
        self.inner.close()

    def local_path(self, key: str) -> str | None:
        return self.inner.local_path(key)
