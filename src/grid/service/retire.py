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
from collections.abc import Callable

from grid.service.context import Context


def retire(ctx: Context, objects: list[tuple[str, list[str]]]) -> None:
    """Keep ``(key, version refs)`` objects until no reader of those versions remains."""
    ctx.store.index.retire(objects)


def retired_keys(ctx: Context) -> set[str]:
    """Keys gc must leave to ``sweep`` (they look unreferenced, but a reader may use them)."""
    return {key for key, _ in ctx.store.index.retired()}


def sweep(ctx: Context, bases: Callable[[], set[str]]) -> tuple[int, int]:
    """Delete retired objects whose versions nobody reads now, except the manifests that
    ``bases()`` names (other manifests are deltas against them); return (deleted, kept).

    ``bases()`` is asked for each retired manifest while its versions are locked against
    readers: a create holds the version it builds a delta on as a reader until its own version
    is in the catalog, so under the lock that delta is either not begun (it will pick the
    rewritten manifest) or already named (and its base is in ``bases()``)."""
    deleted: list[str] = []
    kept = 0
    for key, refs in ctx.store.index.retired():
        with contextlib.ExitStack() as stack:
            if not all(stack.enter_context(ctx.store.readers.deleting(ref)) for ref in refs):
                kept += 1
                continue
            if key.startswith("manifests/"):
                manifest_id = key.rsplit("/", 1)[-1]
                if manifest_id in bases():
                    continue
                ctx.store.delete_manifest(manifest_id)
            else:
                ctx.store.objects.delete(key)
        deleted.append(key)
    ctx.store.index.unretire(deleted)
    ctx.store.index.deleted(deleted)
    return len(deleted), kept
