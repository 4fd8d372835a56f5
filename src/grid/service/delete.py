"""Delete a version or a whole datastore. Packs stay until garbage collection reclaims them."""

from __future__ import annotations

from grid.records import VersionInfo
from grid.service.context import Context


def delete(ctx: Context, name: str, number: int | None = None) -> list[VersionInfo]:
    """Delete version ``number`` of ``name``, or the datastore with every version if None.

    The catalog row goes first, so a version is never visible without its manifest.
    """
    if number is None:
        removed = ctx.catalog.delete_datastore(name)
    else:
        removed = [ctx.catalog.delete_version(name, number)]
    for v in removed:
        ctx.store.delete_manifest(v.manifest_id)
        ctx.store.index.release(v.ref)
    return removed
