"""One folder of another object store, as a store of its own: a team-mode server keeps every
owner under ``<owner>/`` of one store (one connection pool for all of them)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from grid.objects.base import Buffer, ObjectInfo, ObjectStore, validate_key


class PrefixedStore(ObjectStore):
    """Keys ``k`` of this store are ``prefix/k`` of ``inner`` (which ``close`` leaves open)."""

    def __init__(self, inner: ObjectStore, prefix: str) -> None:
        self.inner = inner
        self.prefix = validate_key(prefix.strip("/"))

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{validate_key(key)}"

    def put(self, key: str, parts: Sequence[Buffer]) -> int:
        return self.inner.put(self._k(key), parts)

    def put_file(self, key: str, path: str) -> int:
        return self.inner.put_file(self._k(key), path)

    def get(self, key: str) -> bytes:
        return self.inner.get(self._k(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(self._k(key), offset, length)

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        return self.inner.get_ranges(self._k(key), ranges)

    def size(self, key: str) -> int:
        return self.inner.size(self._k(key))

    def delete(self, key: str) -> None:
        self.inner.delete(self._k(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        cut = len(self.prefix) + 1
        for info in self.inner.list(f"{self.prefix}/{prefix}"):
            yield ObjectInfo(info.key[cut:], info.size, info.modified)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(self._k(key), data)

    def sync(self, keys: Sequence[str]) -> None:
        self.inner.sync([self._k(k) for k in keys])

    def copy(self, src: str, dst: str) -> int:
        return self.inner.copy(self._k(src), self._k(dst))

    def presign(
        self, key: str, method: str, seconds: int, *, create_only: bool = False
    ) -> str | None:
        return self.inner.presign(self._k(key), method, seconds, create_only=create_only)

    def browser_may(self, origin: str, method: str) -> bool:
        return self.inner.browser_may(origin, method)

    def local_path(self, key: str) -> str | None:
        return self.inner.local_path(self._k(key))

    def close(self) -> None:
        """Nothing: the inner store is shared."""
