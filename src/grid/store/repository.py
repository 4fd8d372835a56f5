"""A store: one owner's objects (packs, manifests) plus the local blob index and caches."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from grid.errors import IntegrityError, NotFoundError, ReferenceChangedError, StorageError
from grid.ids import digest_of
from grid.objects.base import Buffer, ObjectStore
from grid.objects.pinned import is_pin
from grid.store.blob_check import check_pack, verify_blob
from grid.store.cache import BlobCache
from grid.store.compression import PINNED, RAW
from grid.store.filestate import FileState
from grid.store.index import BlobIndex
from grid.store.manifest import BlobLocation
from grid.store.manifest_store import ManifestObjects, manifest_key
from grid.store.pack import PackBuilder, pack_key
from grid.store.readers import ReaderLocks

if TYPE_CHECKING:
    from grid.objects.pinned import PinnedObjects

# Blobs of a pack closer than this are fetched with one read (the gap is read and dropped).
_GAP = 64 << 10

__all__ = ["Store", "manifest_key"]


class Store(ManifestObjects):
    """Content-addressed storage over an ``ObjectStore``.

    Args:
        objects: where packs and manifests live.
        index_path: the blob index file (a cache of the pack trailers).
        cache_dir: where manifests fetched from a remote backend are kept, and the blob cache.
        cache_limit: bytes of verified blobs to keep in ``cache_dir`` for random reads (the
            mount, ``open``); 0 keeps none, every read then goes to ``objects`` and is verified.
        state_path: this machine's file state (files already stored, to skip on re-runs).
    """

    def __init__(
        self,
        objects: ObjectStore,
        index_path: str,
        cache_dir: str,
        cache_limit: int = 0,
        state_path: str | None = None,
    ) -> None:
        self.objects = objects
        self.index = BlobIndex(index_path)
        self.files = FileState(state_path) if state_path else None
        self.cache_dir = cache_dir
        self.blob_cache = (
            BlobCache(os.path.join(cache_dir, "blobs"), cache_limit) if cache_limit > 0 else None
        )
        self.readers = ReaderLocks(os.path.join(cache_dir, "readers"))
        self._pinned: PinnedObjects | None = None  # reads of referenced objects, when needed

    def close(self) -> None:
        self.readers.close()
        if self.blob_cache is not None:
            self.blob_cache.close()
        if self.files is not None:
            self.files.close()
        self.index.close()
        self.objects.close()

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the store-wide lock ``name`` (a file lock: across processes) while inside."""
        os.makedirs(self.cache_dir, exist_ok=True)
        with open(os.path.join(self.cache_dir, f"{name}.lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def put_pack(self, pack_id: str, parts: Sequence[Buffer]) -> int:
        """Write a pack object (recorded as this installation's first: see ``BlobIndex``);
        return its size. Not yet durable: ``objects.sync`` it."""
        key = pack_key(pack_id)
        self.index.will_write([key])
        return self.objects.put(key, parts)

    def store_pack(self, pack: PackBuilder) -> None:
        """Store a finished pack durably (not indexed: the caller decides when)."""
        pack.size = self.put_pack(pack.pack_id, pack.finish())
        self.objects.sync([pack_key(pack.pack_id)])

    def read_blob(self, loc: BlobLocation, cached: bool = True) -> bytes:
        """Return a blob's original bytes, verified against its BLAKE3 id when fetched.

        With a blob cache (and ``cached``), a blob found there is returned as is (it was
        verified on the way in), and a fetched one is added to it.

        Raises:
            IntegrityError: the stored bytes are missing, short or do not match the id.
        """
        cache = self.blob_cache if cached else None
        if cache is not None:
            hit = cache.get(loc.digest, loc.raw_length)
            if hit is not None:
                return hit
        data = self._checked(loc, self._get(loc.pack_id, loc.offset, loc.stored_length, loc))
        if cache is not None:
            cache.put(loc.digest, data)
        return data

    def read_blobs(self, locs: list[BlobLocation]) -> list[bytes]:
        """Return many blobs' bytes, each verified; neighbours in a pack are fetched together
        (``ObjectStore.get_ranges``: one ranged read from a remote store, one ``pread`` per
        blob from a local one)."""
        out: list[bytes] = []
        i = 0
        while i < len(locs):
            first = locs[i]
            j = i + 1
            end = first.offset + first.stored_length
            while (
                j < len(locs)
                and locs[j].pack_id == first.pack_id
                and end <= locs[j].offset <= end + _GAP
            ):
                end = locs[j].offset + locs[j].stored_length
                j += 1
            group = locs[i:j]
            payloads = self._get_ranges(first, [(loc.offset, loc.stored_length) for loc in group])
            for loc, payload in zip(group, payloads, strict=True):
                if (
                    loc.codec == RAW
                    and len(payload) == loc.raw_length
                    and digest_of(payload) == loc.digest
                ):
                    out.append(payload)  # the common case, checked inline: ``_checked`` for
                else:  # the rest, and for the error that names what is wrong
                    out.append(self._checked(loc, payload))
            i = j
        return out

    def _checked(self, loc: BlobLocation, payload: bytes) -> bytes:
        """``payload`` decoded and verified; a damaged blob is dropped from the index, so that
        the next create stores it again instead of pointing at the damage."""
        try:
            return verify_blob(loc, payload)
        except IntegrityError as exc:
            self.index.forget_blobs([loc.digest])
            if exc.digest:
                raise
            # an undecodable payload: say which blob (a reader names the file from it)
            digest = loc.digest.hex()
            raise IntegrityError(f"blob {digest}: {exc.message}", digest=digest) from exc

    def _get(self, pack_id: str, offset: int, length: int, loc: BlobLocation) -> bytes:
        if _pinned(loc):
            return self._pinned_ranges(loc, [(offset, length)])[0]
        try:
            return self.objects.get_range(pack_key(pack_id), offset, length)
        except NotFoundError as exc:
            raise self._missing(loc) from exc

    def _get_ranges(self, first: BlobLocation, ranges: list[tuple[int, int]]) -> list[bytes]:
        if _pinned(first):
            return self._pinned_ranges(first, ranges)
        try:
            return self.objects.get_ranges(pack_key(first.pack_id), ranges)
        except NotFoundError as exc:
            raise self._missing(first) from exc

    def _pins(self) -> PinnedObjects:
        """The reader of referenced objects (made on first use: boto3 loads only then)."""
        from grid.objects.pinned import PinnedObjects

        if self._pinned is None:
            self._pinned = PinnedObjects()
        return self._pinned

    def _pinned_ranges(self, loc: BlobLocation, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Pieces of an object a ``--no-copy`` version references, read where it is."""
        from grid.objects.pinned import Pin

        try:
            return self._pins().get_ranges(Pin.parse(loc.pack_id), ranges)
        except ReferenceChangedError as exc:
            raise ReferenceChangedError(
                exc.message, **{**exc.attrs, "digest": loc.digest.hex()}
            ) from exc

    def check_pins(self, pins: Sequence[str]) -> dict[str, str]:
        """Check each pinned object named in ``pins`` (a HEAD each): problem by pin name."""
        from grid.objects.pinned import Pin

        problems = {}
        for name in pins:
            try:
                self._pins().check(Pin.parse(name))
            except (ReferenceChangedError, StorageError) as exc:
                problems[name] = exc.message
        return problems

    def _missing(self, loc: BlobLocation) -> IntegrityError:
        """The error for a pack that is not there (forgotten by the index, so that the next
        create stores its blobs again)."""
        self.index.forget_pack(loc.pack_id)
        return IntegrityError(
            f"pack {loc.pack_id} holding blob {loc.digest.hex()} is missing",
            digest=loc.digest.hex(),
        )

    def recover_packs(self, holder: str) -> int:
        """Index the packs a stopped create (``holder``) stored but had not indexed yet, after
        checking every blob in them; return how many. Damaged ones are deleted."""
        leased = [pack for _, pack in self.index.leased(holder)]
        indexed = self.index.has_packs(leased)
        recovered = 0
        for pack_id in leased:
            if pack_id in indexed:
                continue
            key = pack_key(pack_id)
            try:
                data = self.objects.get(key)
                blobs = check_pack(pack_id, data)
            except NotFoundError:
                continue
            except IntegrityError:
                self.objects.delete(key)
                continue
            self.objects.sync([key])
            self.index.add_pack(pack_id, len(data), blobs)
            recovered += 1
        return recovered

    def missing_packs(self, pack_ids: list[str]) -> list[str]:
        """Return the pack ids that are not stored (a cheap existence check, no reads)."""
        missing = []
        for pid in pack_ids:
            try:
                self.objects.size(pack_key(pid))
            except NotFoundError:
                missing.append(pid)
        return missing


def _pinned(loc: BlobLocation) -> bool:
    """Whether ``loc`` is a piece of an object referenced where it is: its pack is a pin and
    its codec says so. Either alone is a damaged manifest.

    Raises:
        IntegrityError: one without the other.
    """
    pin = is_pin(loc.pack_id)
    if pin != (loc.codec == PINNED):
        raise IntegrityError(
            f"damaged manifest: blob {loc.digest.hex()} mixes a pin and a stored blob",
            digest=loc.digest.hex(),
        )
    return pin
