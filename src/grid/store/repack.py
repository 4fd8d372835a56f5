"""Repacking, the store's half of gc: copy the blobs still needed out of sparse packs into new
packs, and rewrite a manifest so that it points at the copies. What to repack, which
versions' manifests to swap in the catalog and when the old objects may go are gc's
decisions (``grid.service.gc``); nothing here touches the index or deletes anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from grid.store.manifest import relocate_manifest
from grid.store.pack import PackBuilder, pack_key, parse_trailer
from grid.store.repository import Store

Moved = dict[tuple[str, int], tuple[str, int]]  # (old pack, offset) -> (new pack, offset)


@dataclass
class Copied:
    """What ``copy_live`` did: where each copied blob went, the new packs (stored durably,
    not yet in the index), and the bytes copied."""

    moved: Moved = field(default_factory=dict)
    written: list[PackBuilder] = field(default_factory=list)
    bytes_copied: int = 0


def copy_live(
    store: Store, packs: Iterable[str], wanted: Callable[[str], set[tuple[int, int]]]
) -> Copied:
    """Copy the blobs of each pack in ``packs`` that ``wanted(pack)`` names, as ``(offset,
    stored length)`` pairs, into new packs; each old pack is read once, whole."""
    out = Copied()
    pack = PackBuilder()
    for old_id in packs:
        keep = wanted(old_id)
        data = store.objects.get(pack_key(old_id))
        for blob in parse_trailer(data):
            if (blob.offset, blob.stored_length) not in keep:
                continue
            payload = data[blob.offset : blob.offset + blob.stored_length]
            placed = pack.add(blob.digest, payload, blob.raw_length, blob.codec)
            out.moved[(old_id, blob.offset)] = (pack.pack_id, placed.offset)
            out.bytes_copied += blob.stored_length
            if pack.full:
                store.store_pack(pack)
                out.written.append(pack)
                pack = PackBuilder()
    if pack.blobs:
        store.store_pack(pack)
        out.written.append(pack)
    return out


def rewrite_manifest(
    store: Store, manifest_id: str, moved: Moved, scratch: Callable[[str], str]
) -> tuple[str, int]:
    """Store a copy of manifest ``manifest_id`` whose blobs point where ``moved`` says, built
    in the scratch file ``scratch(name)``; return its id and the bytes stored."""
    new_id = uuid.uuid4().hex
    path = scratch(f"{new_id}.manifest")
    try:
        relocate_manifest(store.manifest_path(manifest_id), path, moved)
        return new_id, store.put_manifest(new_id, path)
    finally:
        if os.path.exists(path):
            os.unlink(path)
