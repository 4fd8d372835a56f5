"""Objects gc replaced, kept until no reader can need them.

A repack copies a pack's live blobs elsewhere and points the versions' manifests at the new
places (new manifest objects). A reader that opened a version before that (a mount, an open
file, ``iter_files``) still reads through the old manifest and the old pack, so gc *retires*
them instead of deleting them: they are recorded with the versions that pointed at them, and
deleted, by this gc or a later one, once none of those versions is being read
(``grid.store.readers``). A reader that starts after the swap reads the catalog after taking
its lock, so it sees the new manifest and never needs a retired object. A retired manifest
that a kept version's manifest is a delta against stays until that one goes too.
"""

from __future__ import annotations

import contextlib

from grid.service.context import Context


def retire(ctx: Context, objects: list[tuple[str, list[str]]]) -> None:
    """Keep ``(key, version refs)`` objects until no reader of those versions remains."""
    ctx.store.index.retire(objects)


def retired_keys(ctx: Context) -> set[str]:
    """Keys gc must leave to ``sweep`` (they look unreferenced, but a reader may use them)."""
    return {key for key, _ in ctx.store.index.retired()}


def sweep(ctx: Context, bases: set[str]) -> tuple[int, int]:
    """Delete retired objects whose versions nobody reads now, except the manifests in
    ``bases`` (other manifests are deltas against them); return (deleted, kept)."""
    deleted: list[str] = []
    kept = 0
    for key, refs in ctx.store.index.retired():
        if key.rsplit("/", 1)[-1] in bases and key.startswith("manifests/"):
            continue
        if _being_read(ctx, refs):
            kept += 1
            continue
        if key.startswith("manifests/"):
            ctx.store.delete_manifest(key.rsplit("/", 1)[-1])
        else:
            ctx.store.objects.delete(key)
        deleted.append(key)
    ctx.store.index.unretire(deleted)
    ctx.store.index.deleted(deleted)
    return len(deleted), kept


def _being_read(ctx: Context, refs: list[str]) -> bool:
    with contextlib.ExitStack() as stack:
        return not all(stack.enter_context(ctx.store.readers.deleting(ref)) for ref in refs)
