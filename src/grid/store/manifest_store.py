"""A store's manifests: storing one (whole, or as a delta against an earlier one), fetching
and rebuilding one into the local cache, and which stored manifests others are deltas against.
The object format is ``grid.store.manifest_object``'s."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable

from grid.errors import GridError, IntegrityError, NotFoundError, storage_error
from grid.objects.base import ObjectStore
from grid.store.index import BlobIndex
from grid.store.manifest_object import (
    HEADER_READ,
    MAX_CHAIN,
    SQLITE_MAGIC,
    delta_bases,
    fits_delta,
    unpack,
    write_delta,
    write_whole,
)
from grid.store.manifest_reader import ManifestReader


def manifest_key(manifest_id: str) -> str:
    """Object key of a version's manifest."""
    return f"manifests/{manifest_id[:2]}/{manifest_id}"


class ManifestObjects:
    """The manifest half of ``grid.store.repository.Store`` (which sets these attributes)."""

    objects: ObjectStore
    index: BlobIndex
    cache_dir: str

    def put_manifest(self, manifest_id: str, path: str, base: str | None = None) -> int:
        """Store a finished manifest file and return the stored size: as a delta against
        manifest ``base`` where one is given and may be (see ``grid.store.manifest_object``),
        else whole. The file itself becomes the cache's copy, so the version's first reader
        here does not unpack it again (1.5 s for 10 million files)."""
        key = manifest_key(manifest_id)
        packed = f"{path}.zst"
        self.index.will_write([key])
        try:
            bases, base_path = self._delta_chain(base, os.path.getsize(path))
            with open(path, "rb") as src, open(packed, "wb") as dst:
                if bases:
                    with open(base_path, "rb") as f:
                        write_delta(src, dst, f.read(), bases)
                else:
                    write_whole(src, dst)
            stored = self.objects.put_file(key, packed)
            with contextlib.suppress(OSError):  # another filesystem: the first read unpacks
                cached = os.path.join(self.cache_dir, "manifests", manifest_id)
                os.makedirs(os.path.dirname(cached), exist_ok=True)
                os.replace(path, cached)
            return stored
        except OSError as exc:
            raise storage_error(exc, f"compress the manifest {path}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(packed)

    def _delta_chain(self, base: str | None, size: int) -> tuple[list[str], str]:
        """The bases a new manifest of ``size`` bytes is stored against, and the path of the
        first: none without a base, if the base is unreadable, or if its chain is full."""
        if base is None:
            return [], ""
        try:
            base_path = self.manifest_path(base)
            bases = [base, *self.manifest_bases(base)]
        except GridError:  # the new manifest does not need it: stored whole
            return [], ""
        if len(bases) > MAX_CHAIN or not fits_delta(os.path.getsize(base_path), size):
            return [], ""
        return bases, base_path

    def manifest_bases(self, manifest_id: str) -> list[str]:
        """The manifests a stored manifest is a delta against, nearest first ([] if whole).

        Raises:
            IntegrityError: the manifest is missing or its header is damaged.
        """
        key = manifest_key(manifest_id)
        try:
            stored = self.objects.local_path(key)
            if stored is not None:
                with open(stored, "rb") as f:
                    head = f.read(HEADER_READ)
            else:
                head = self.objects.get_range(key, 0, HEADER_READ)
        except (NotFoundError, FileNotFoundError) as exc:
            raise IntegrityError(f"manifest {manifest_id} is missing from the store") from exc
        except OSError as exc:
            raise storage_error(exc, f"read the manifest {manifest_id}") from exc
        return delta_bases(head)

    def open_manifest(self, manifest_id: str) -> ManifestReader:
        """Open a version's manifest for queries, fetching it into the cache if remote.

        Raises:
            IntegrityError: the manifest is missing or damaged.
        """
        return ManifestReader(self.manifest_path(manifest_id))

    def manifest_path(self, manifest_id: str, _seen: tuple[str, ...] = ()) -> str:
        """A local file holding a version's manifest (fetched into the cache if remote, and
        a delta rebuilt from its bases, which are materialised first).

        Raises:
            IntegrityError: the manifest or one of its bases is missing or damaged.
        """
        key = manifest_key(manifest_id)
        stored = self.objects.local_path(key)
        if stored is not None and not os.path.exists(stored):
            raise IntegrityError(f"manifest {manifest_id} is missing from the store")
        if stored is not None and _is_sqlite(stored):
            return stored  # format 1.0: stored uncompressed, usable in place
        path = os.path.join(self.cache_dir, "manifests", manifest_id)
        if os.path.exists(path):
            return path
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            data = self.objects.get(key) if stored is None else None
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with io.BytesIO(data) if data is not None else open(str(stored), "rb") as src:
                bases = delta_bases(src.read(HEADER_READ))
                src.seek(0)
                base_path = None
                if bases:
                    if manifest_id in bases or bases[0] in _seen or len(_seen) > MAX_CHAIN * 4:
                        raise IntegrityError(f"manifest {manifest_id} is a delta in a loop")
                    base_path = self.manifest_path(bases[0], (*_seen, manifest_id))
                with open(tmp, "wb") as dst:
                    unpack(src, dst, base_path)
            os.replace(tmp, path)
        except NotFoundError as exc:
            raise IntegrityError(f"manifest {manifest_id} is missing from the store") from exc
        except IntegrityError as exc:
            if manifest_id in exc.message:
                raise
            raise IntegrityError(f"manifest {manifest_id} is damaged: {exc.message}") from exc
        except OSError as exc:
            raise storage_error(exc, f"unpack the manifest {manifest_id}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return path

    def delete_manifest(self, manifest_id: str) -> None:
        self.objects.delete(manifest_key(manifest_id))
        cached = os.path.join(self.cache_dir, "manifests", manifest_id)
        if os.path.exists(cached):
            os.unlink(cached)

    def bases_needed(self, manifest_ids: Iterable[str]) -> set[str]:
        """Every stored manifest one of ``manifest_ids`` is a delta against (directly or
        not): these must stay while those do. Missing or unreadable ones need nothing."""
        needed: set[str] = set()
        for manifest_id in manifest_ids:
            with contextlib.suppress(GridError):
                needed.update(self.manifest_bases(manifest_id))
        return needed


def _is_sqlite(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
