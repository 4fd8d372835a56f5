"""Team mode: accept what a client uploaded for a version, or refuse it, on the server.

A client uploads new packs and the manifest straight to their keys in the owner's storage,
with URLs that only create (``If-None-Match: *``, signed into the URL): an object, once
there, cannot be replaced through them, and the server never hands out a URL for a pack the
owner already has. Such an object counts for nothing until a commit checks it: the server
reads each new pack the manifest uses and checks its layout and every blob against its id,
then records its trailer (registered first, so that no other commit checks it meanwhile).
Every blob the manifest uses must then sit, byte for byte as described, in a pack of that
owner: a client cannot commit bytes that do not match, nor point at another owner's. A pack
or manifest that fails is deleted, and the version is refused.
"""

from __future__ import annotations

import contextlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from grid.catalog.packs import PackRegistry
from grid.errors import ConflictError, GridError, IntegrityError, NotFoundError, UploadRefusedError
from grid.objects import ObjectStore
from grid.records import VersionInfo
from grid.store.blob_check import check_pack, unpacked_manifest
from grid.store.manifest import FILE
from grid.store.manifest_reader import ManifestReader
from grid.store.pack import ENTRY, pack_key, parse_trailer
from grid.store.repository import manifest_key

_ID = re.compile(r"[0-9a-f]{32}")
_CHECKERS = 4  # packs checked at once
_WAIT_FOR_OTHER = 120.0  # seconds a commit waits for another one checking the same pack ...
_LOOK_AGAIN = 5.0  # ... trying every this many to take over a check left stale (STALE)


@dataclass(frozen=True)
class OwnerArea:
    """An owner's part of the server's storage: ``OWNER/packs``, ``OWNER/manifests``."""

    objects: ObjectStore
    owner: str
    owner_id: int

    def key(self, key: str) -> str:
        return f"{self.owner}/{key}"


@dataclass(frozen=True)
class Committed:
    """What a commit found: the version's figures and the bytes it newly stored."""

    files: int
    size: int
    stored_bytes: int


def commit(area: OwnerArea, packs: PackRegistry, version: VersionInfo, scratch: str) -> Committed:
    """Check what was uploaded for ``version`` (see the module docstring).

    Raises:
        UploadRefusedError: a pack or the manifest is missing, damaged or does not match (the
            reason names it; what failed is deleted).
    """
    manifest_id = version.manifest_id
    if not _ID.fullmatch(manifest_id):
        raise UploadRefusedError(f"{version.ref} has no valid manifest id")
    key = area.key(manifest_key(manifest_id))
    try:
        data = area.objects.get(key)
    except NotFoundError as exc:
        raise UploadRefusedError(f"the manifest of {version.ref} was not uploaded") from exc
    try:
        with contextlib.ExitStack() as stack:
            try:
                manifest = stack.enter_context(unpacked_manifest(data, scratch))
            except IntegrityError as exc:  # zstd, sqlite, a field or format: the client's doing
                raise UploadRefusedError(f"the uploaded manifest is damaged: {exc}") from exc
            _check_meta(manifest, version)
            trailers = check_uploaded(area, packs, manifest.pack_ids)
            files, size = _check_blobs(manifest, trailers)
            new_bytes = packs.bytes_since(area.owner_id, manifest.pack_ids, version.created_at)
    except UploadRefusedError:
        with contextlib.suppress(GridError):
            area.objects.delete(key)
        raise
    return Committed(files, size, len(data) + new_bytes)  # packs recorded since it began


def _check_meta(manifest: ManifestReader, version: VersionInfo) -> None:
    meta = manifest.meta
    if meta.get("datastore") != version.datastore or meta.get("version") != str(version.number):
        raise UploadRefusedError(f"the uploaded manifest is not the one of {version.ref}")


def check_uploaded(area: OwnerArea, packs: PackRegistry, pack_ids: list[str]) -> dict[str, bytes]:
    """Trailers of every pack in ``pack_ids``, checking (and recording) those the owner does
    not have yet: at commit, or as soon as a client has uploaded them (so that the commit
    finds them checked and the check overlaps the upload).

    Raises:
        UploadRefusedError: one is missing or damaged (deleted then); an id is malformed.
    """
    for pid in pack_ids:
        if not _ID.fullmatch(pid):
            raise UploadRefusedError(f"invalid pack id {pid[:40]!r}")
    known = {pid: trailer for pid, (_, trailer) in packs.verified(area.owner_id, pack_ids).items()}

    def check_one(pid: str) -> bytes:
        deadline = time.monotonic() + _WAIT_FOR_OTHER
        while True:  # until it is ours to check, or another commit has checked it
            try:
                packs.register(area.owner_id, pid)  # takes over a check left STALE
                break
            except ConflictError:
                trailer = _checked_by_other(area, packs, pid, deadline)
                if trailer is not None:
                    return trailer
        try:
            trailer, size = _check_pack(area, pid)
        except BaseException:
            packs.unregister(area.owner_id, pid)
            raise
        packs.mark_verified(area.owner_id, pid, size, trailer)
        return trailer

    new = [pid for pid in dict.fromkeys(pack_ids) if pid not in known]
    # zstd and BLAKE3 release the GIL, and S3 reads wait on the network: check side by side
    with ThreadPoolExecutor(_CHECKERS) as pool:
        futures = {pid: pool.submit(check_one, pid) for pid in new}
        for pid, future in futures.items():
            known[pid] = future.result()
    return known


def _check_pack(area: OwnerArea, pack_id: str) -> tuple[bytes, int]:
    """(trailer, size) of an uploaded pack, once checked; a bad one is deleted."""
    key = area.key(pack_key(pack_id))
    try:
        data = area.objects.get(key)
    except NotFoundError as exc:
        raise UploadRefusedError(f"pack {pack_id} was not uploaded", pack=pack_id) from exc
    try:
        blobs = check_pack(pack_id, data)
    except IntegrityError as exc:
        with contextlib.suppress(GridError):
            area.objects.delete(key)  # the client finds it gone and uploads it anew
        raise UploadRefusedError(exc.message, pack=pack_id) from exc
    return b"".join(ENTRY.pack(*b) for b in blobs) + data[-12:], len(data)


def _checked_by_other(
    area: OwnerArea, packs: PackRegistry, pack_id: str, deadline: float
) -> bytes | None:
    """The trailer of a pack another commit is checking, if it finishes within a few
    seconds; None to try registering again (its server may have died mid-check).

    Raises:
        ConflictError: (transient) still being checked at ``deadline``.
    """
    until = min(deadline, time.monotonic() + _LOOK_AGAIN)
    while time.monotonic() < until:
        time.sleep(0.2)
        found = packs.verified(area.owner_id, [pack_id])
        if pack_id in found:
            return found[pack_id][1]
    if time.monotonic() >= deadline:
        raise ConflictError(f"pack {pack_id} is still being checked; commit again", transient=True)
    return None


def _check_blobs(manifest: ManifestReader, trailers: dict[str, bytes]) -> tuple[int, int]:
    """Every file's blobs are where and what the manifest says; (files, bytes)."""
    tables = {pid: {b.digest: b for b in parse_trailer(t)} for pid, t in trailers.items()}
    files = size = 0
    try:
        manifest.stat("")  # the root (its time is in the meta table)
        for entry in manifest.walk():
            if entry.kind != FILE:
                continue
            total = 0
            for loc in manifest.blobs(entry):
                held = tables[loc.pack_id].get(loc.digest)
                if held is None or tuple(held[1:]) != tuple(loc[2:]):
                    raise UploadRefusedError(
                        f"the manifest points {entry.path!r} at bytes that pack {loc.pack_id} "
                        "does not hold"
                    )
                total += loc.raw_length
            if total != entry.size:
                raise UploadRefusedError(f"the manifest gives {entry.path!r} a wrong size")
            files += 1
            size += total
    except (KeyError, ValueError, TypeError) as exc:
        raise UploadRefusedError(f"the uploaded manifest is malformed: {exc}") from exc
    except IntegrityError as exc:  # the manifest reader's own checks of rows and links
        raise UploadRefusedError(f"the uploaded manifest is malformed: {exc.message}") from exc
    return files, size
