"""Repacking, the store's half of gc: copy the blobs still needed out of sparse packs into new
packs, and rewrite a manifest so that it points at the copies. What to repack, which
versions' manifests to swap in the catalog and when the old objects may go are gc's
decisions (``grid.service.gc``); nothing here touches the index or deletes anything.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from grid.store.manifest import BLOB
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


_RELOCATE_PAGE = 10_000


def relocate_manifest(src: str, dst: str, moved: Mapping[tuple[str, int], tuple[str, int]]) -> None:
    """Write a copy of manifest ``src`` at ``dst`` in which every blob at (pack, offset) found
    in ``moved`` points at its new (pack, offset) instead (gc's repacking); packs no blob
    points into any more are dropped from its ``packs`` table. Only ``moved.get`` is used,
    so it may be a mapping kept on disk."""
    shutil.copyfile(src, dst)
    db = sqlite3.connect(dst)
    try:
        numbers = {name: no for no, name in db.execute("SELECT no, name FROM packs")}
        names = {no: name for name, no in numbers.items()}
        used: set[int] = set()
        last = -1
        while True:  # a page of entries at a time: memory stays flat at any number of files
            page = db.execute(
                "SELECT id, blobs FROM entries WHERE id > ? AND blobs IS NOT NULL ORDER BY id "
                "LIMIT ?",
                (last, _RELOCATE_PAGE),
            ).fetchall()
            if not page:
                break
            last = page[-1][0]
            updates = []
            for entry_id, raw in page:
                blobs = [BLOB.unpack_from(raw, i) for i in range(0, len(raw), BLOB.size)]
                changed = False
                for i, (no, digest, offset, stored, rawlen, codec) in enumerate(blobs):
                    target = moved.get((names[no], offset))
                    if target is not None:
                        new_no = numbers.get(target[0])
                        if new_no is None:
                            new_no = numbers[target[0]] = max(names, default=-1) + 1
                            names[new_no] = target[0]
                        blobs[i] = (new_no, digest, target[1], stored, rawlen, codec)
                        changed = True
                    used.add(blobs[i][0])
                if changed:
                    updates.append((b"".join(BLOB.pack(*b) for b in blobs), entry_id))
            db.executemany("UPDATE entries SET blobs = ? WHERE id = ?", updates)
        db.execute("DELETE FROM packs")
        db.executemany("INSERT INTO packs VALUES (?, ?)", [(n, names[n]) for n in sorted(used)])
        db.commit()
        db.execute("VACUUM")
    finally:
        db.close()
