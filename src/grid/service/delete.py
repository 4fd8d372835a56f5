"""Delete a version or a whole datastore. Packs stay until garbage collection reclaims them."""

from __future__ import annotations

from grid.errors import UsageError
from grid.records import SUCCEEDED, UNFINISHED, VersionInfo
from grid.service.context import Context
from grid.service.ownership import ensure_owned


def delete(ctx: Context, name: str, number: int | None = None) -> list[VersionInfo]:
    """Delete version ``number`` of ``name``, or the datastore with every version if None.

    The catalog row goes first, so a version is never visible without its manifest.

    Raises:
        StorageClaimedError: the storage belongs to another installation (nothing deleted).
    """
    ensure_owned(ctx)
    if number is None:
        removed = ctx.catalog.delete_datastore(name)
    else:
        removed = [ctx.catalog.delete_version(name, number)]
    for v in removed:
        ctx.store.delete_manifest(v.manifest_id)
        ctx.store.index.release(v.ref)
    return removed


def keep_last(ctx: Context, name: str, keep: int) -> list[VersionInfo]:
    """Retention: delete every version of ``name`` older than its ``keep`` newest succeeded
    ones (unfinished versions are left alone); return those deleted."""
    if keep < 1:
        raise UsageError(f"--keep-last {keep} would delete every version", rule="keep at least 1")
    versions = ctx.catalog.versions(name)
    kept = [v for v in versions if v.status == SUCCEEDED][-keep:]
    if not kept:
        return []
    oldest_kept = kept[0].number
    doomed = [v for v in versions if v.number < oldest_kept and v.status not in UNFINISHED]
    removed = []
    for v in doomed:
        removed.extend(delete(ctx, name, v.number))
    return removed
