"""Delete a version or a whole datastore. Packs stay until garbage collection reclaims them.

A version being read (mounted, open, downloading: ``grid.store.readers``) or still being
created by a running create is never deleted: the delete is refused, naming what uses it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from grid.errors import ConflictError, UsageError
from grid.records import SUCCEEDED, UNFINISHED, VersionInfo
from grid.service.context import Context
from grid.service.home_guard import unescape_mount_field
from grid.service.lease import stopped
from grid.service.ownership import ensure_owned

Warn = Callable[[str], None]


def delete(ctx: Context, name: str, number: int | None = None) -> list[VersionInfo]:
    """Delete version ``number`` of ``name``, or the datastore with every version if None.

    The catalog row goes first, so a version is never visible without its manifest.

    Raises:
        StorageClaimedError: the storage belongs to another installation (nothing deleted).
        ConflictError: a version is in use or still being created (nothing deleted).
    """
    ensure_owned(ctx)
    targets = ctx.catalog.versions(name) if number is None else [ctx.catalog.version(name, number)]
    with _unused(ctx, targets):
        if number is None:
            removed = ctx.catalog.delete_datastore(name)
        else:
            removed = [ctx.catalog.delete_version(name, number)]
        left = ctx.catalog.versions(name) if number is not None else []
        _delete_manifests(ctx, removed, left)
        for v in removed:
            ctx.store.index.release(v.ref)
    return removed


def _delete_manifests(ctx: Context, removed: list[VersionInfo], left: list[VersionInfo]) -> None:
    """Delete the manifests of ``removed`` and those they were deltas against, except what
    the datastore's ``left`` versions name or are deltas against (docs/format.md, "Manifest
    objects"): a base outlives the versions stored against it."""
    kept = {v.manifest_id for v in left}
    doomed = {v.manifest_id for v in removed}
    doomed |= ctx.store.bases_needed(doomed)
    doomed -= kept | ctx.store.bases_needed(kept)
    for manifest_id in sorted(doomed):
        ctx.store.delete_manifest(manifest_id)


@contextlib.contextmanager
def _unused(ctx: Context, versions: list[VersionInfo]) -> Iterator[None]:
    """Lock ``versions`` against readers for the block, or refuse if one is in use."""
    with contextlib.ExitStack() as stack:
        for v in versions:
            problem = in_use(ctx, v, stack)
            if problem:
                raise ConflictError(problem)
        yield


def in_use(ctx: Context, v: VersionInfo, stack: contextlib.ExitStack) -> str:
    """Why ``v`` cannot be deleted now ('' if it can; its reader lock then joins ``stack``)."""
    if v.status in UNFINISHED and not stopped(ctx, v):
        return (
            f"{v.ref} is still being created on {v.host} (pid {v.pid}): stop that create "
            "(Ctrl-C) or let it finish, then delete"
        )
    if not stack.enter_context(ctx.store.readers.deleting(v.ref)):
        where = mountpoints(v.ref)
        return f"{v.ref} is in use: " + (
            f"mounted at {', '.join(where)} (unmount it first: grid datastore unmount PATH)"
            if where
            else "a download, a Python reader or a mount has it open; close it first"
        )
    return ""


def mountpoints(ref: str) -> list[str]:
    """Where ``ref`` is mounted on this machine (a grid mount's source is ``grid:NAME:N``)."""
    out = []
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                source, point = line.split(" ")[:2]
                if source == f"grid:{ref}":
                    out.append(unescape_mount_field(point))
    except OSError:
        pass
    return out


def keep_last(ctx: Context, name: str, keep: int, warn: Warn | None = None) -> list[VersionInfo]:
    """Retention: delete every version of ``name`` older than its ``keep`` newest succeeded
    ones (unfinished versions are left alone, and so are versions in use: a later run deletes
    them); return those deleted."""
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
        try:
            removed.extend(delete(ctx, name, v.number))
        except ConflictError as exc:
            if warn is not None:
                warn(f"kept {v.ref} for now: {exc.message}")
    return removed
