"""Garbage collection: give back the space of packs no version needs any more.

Mark: the blobs of every succeeded version are streamed, manifest by manifest, into a scratch
SQLite table keyed by (pack, offset), so memory stays flat at any number of files (restic and
borg hold every id in RAM). Sweep: a pack with no live blob is deleted; a pack whose live bytes
are below ``repack_below`` of its size has its live blobs copied into new packs and the
manifests that pointed into it rewritten (new manifest objects, swapped in the catalog).

Safety with creates running at the same time: a create leases each pack it writes or references
before relying on it, and re-checks the index after leasing (see ``BlobIndex.lease``). gc never
removes a leased pack: it drops a pack from the index first, in one transaction that checks
for leases, and only then deletes the object. So either the create's lease came first and gc
keeps the pack, or gc came first and the create sees the pack gone and stores its blobs again.
Leases outlive a create's success (a gc already past its mark phase has not seen that version);
gc drops the leases of versions it has marked, failed ones and deleted ones. Only one gc runs
at a time per store.

Safety with other writers: gc deletes (or repacks) only an object that this installation
recorded writing (``BlobIndex.will_write``) and that is older than the grace period
(``Context.gc_grace``, 24 h by default); everything else is kept and counted. It runs only on
storage its catalog has claimed (``grid.service.ownership``). See docs/format.md, "Garbage
collection".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator

from grid.errors import NoSpaceError
from grid.objects import ObjectInfo
from grid.records import FAILED, SUCCEEDED, VersionInfo
from grid.reports import GcReport
from grid.service import usage
from grid.service.context import Context
from grid.service.listing import all_versions
from grid.service.ownership import ensure_owned
from grid.service.retire import retire, retired_keys, sweep
from grid.store.pack import ENTRY, FRAME_BYTES, TARGET_SIZE, pack_key
from grid.store.repack import copy_live, rewrite_manifest
from grid.store.repository import manifest_key

_SCRATCH = "gc-"  # scratch table files in the installation's tmp folder
# A sparse pack is repacked only if that frees at least this much: a small pack's trailer and
# header alone can be half of it, and copying it again on every run gains nothing.
_REPACK_MIN_GAIN = 1 << 20


Progress = Callable[[str], None]


def _versions(ctx: Context) -> list[VersionInfo]:
    return all_versions(ctx.catalog)


def _mark(ctx: Context, db: sqlite3.Connection, versions: list[VersionInfo]) -> None:
    db.execute(
        "CREATE TABLE live (pack TEXT, offset INTEGER, stored INTEGER, PRIMARY KEY (pack, offset))"
        " WITHOUT ROWID"
    )
    for v in versions:
        manifest = ctx.store.open_manifest(v.manifest_id)
        try:
            db.executemany("INSERT OR IGNORE INTO live VALUES (?, ?, ?)", manifest.blob_spans())
        finally:
            manifest.close()
    db.commit()


def gc(
    ctx: Context,
    *,
    repack_below: float = 0.5,
    dry_run: bool = False,
    progress: Progress | None = None,
    grace: float | None = None,
) -> GcReport:
    """Delete unreferenced packs and repack mostly-dead ones; see the module docstring.
    ``grace`` (seconds) overrides ``ctx.gc_grace``."""
    say = progress or (lambda _msg: None)
    report = GcReport()
    ensure_owned(ctx)
    cutoff = time.time() - (ctx.gc_grace if grace is None else grace)
    with ctx.store.exclusive("gc"):
        _remove_stale_scratch(ctx)
        versions = _versions(ctx)
        live_versions = [v for v in versions if v.status == SUCCEEDED]
        scratch = ctx.scratch_path(f"{_SCRATCH}{uuid.uuid4().hex}.sqlite")
        db = sqlite3.connect(scratch)
        try:
            say(f"marking blobs of {len(live_versions)} versions")
            _mark(ctx, db, live_versions)
            stale = _stale_holders(ctx, {v.ref for v in live_versions})
            if not dry_run:
                for holder in stale:
                    ctx.store.index.release(holder)
            dead, sparse = _classify(ctx, db, repack_below, report, cutoff, stale)
            say(f"{len(dead)} packs unreferenced, {len(sparse)} to repack")
            if not dry_run:
                report.manifests_deleted = _drop_orphan_manifests(ctx, report, cutoff)
                if sparse:
                    _repack(ctx, db, sparse, live_versions, report)
                _delete_packs(ctx, dead)
                ctx.store.objects.clean_partial()
                report.retired_deleted, report.kept_for_readers = sweep(ctx, lambda: _bases(ctx))
                usage.forget(ctx)  # the store changed under unchanged versions
            else:
                report.packs_repacked = len(sparse)
                report.bytes_reclaimed += sum(sparse.values())
                _predict_repacked(db, sparse, report)
        except sqlite3.OperationalError as exc:  # the scratch table, on a full disk
            if "full" not in str(exc):
                raise
            raise NoSpaceError(f"no space left for gc's scratch table in {scratch}") from exc
        finally:
            db.close()
            os.unlink(scratch)
    return report


def _remove_stale_scratch(ctx: Context) -> None:
    """Remove the scratch tables of gc runs that were killed (this one holds the gc lock, so
    no other is running), and those of storage accounting runs over an hour old (killed:
    one that is running may be younger)."""
    hour_ago = time.time() - 3600
    with contextlib.suppress(OSError):
        for name in os.listdir(ctx.scratch_dir):
            if not name.endswith((".sqlite", ".sqlite-journal")):
                continue
            path = os.path.join(ctx.scratch_dir, name)
            with contextlib.suppress(OSError):
                if name.startswith(_SCRATCH) or (
                    name.startswith(usage.SCRATCH) and os.path.getmtime(path) < hour_ago
                ):
                    os.unlink(path)


def _stale_holders(ctx: Context, marked: set[str]) -> set[str]:
    """Lease holders no create needs: versions this gc marked, failed ones and deleted ones.

    Leases are read before the catalog: a create takes its version row before its first lease,
    so a holder missing from the later catalog read was deleted, not yet to come."""
    holders = {holder for holder, _ in ctx.store.index.leased()}
    status = {v.ref: v.status for v in _versions(ctx)}
    return {h for h in holders if h in marked or status.get(h, FAILED) == FAILED}


def _classify(
    ctx: Context,
    db: sqlite3.Connection,
    repack_below: float,
    report: GcReport,
    cutoff: float,
    stale: set[str],
) -> tuple[dict[str, int], dict[str, int]]:
    """Split stored packs into dead (no live blob) and sparse (few live bytes, and enough
    dead ones to pay for the copy): id -> size. Packs leased by ``stale`` holders count as
    unleased (a real run has released them by now; a dry run must predict that)."""
    live = dict(db.execute("SELECT pack, SUM(stored) FROM live GROUP BY pack"))
    leased = {pack for holder, pack in ctx.store.index.leased() if holder not in stale}
    leased |= {key.rsplit("/", 1)[-1] for key in retired_keys(ctx)}  # swept separately
    dead: dict[str, int] = {}
    sparse: dict[str, int] = {}
    for obj in _collectable(ctx, ctx.store.objects.list("packs/"), report, cutoff, live):
        pack_id, size = obj.key.rsplit("/", 1)[-1], obj.size
        used = live.get(pack_id, 0)
        if pack_id in leased:
            continue
        if used == 0:
            dead[pack_id] = size
            report.packs_deleted += 1
            report.bytes_reclaimed += size
        elif used < repack_below * size and size - used >= _REPACK_MIN_GAIN:
            sparse[pack_id] = size
        else:
            report.live_packs += 1
            report.live_bytes += size
    return dead, sparse


def _delete_packs(ctx: Context, packs: dict[str, int]) -> None:
    forgotten = ctx.store.index.forget_unleased(list(packs))
    for pack_id in forgotten:
        ctx.store.objects.delete(pack_key(pack_id))
    ctx.store.index.deleted(pack_key(p) for p in forgotten)


def _drop_orphan_manifests(ctx: Context, report: GcReport, cutoff: float) -> int:
    """Delete stored manifests no version names (a create that died right after storing it).

    The store is listed before the catalog is read: a create names its manifest in the catalog
    before storing it, so every manifest listed that a live create will use is known by then
    (read the other way round, a create started meanwhile lost its manifest)."""
    stored = list(ctx.store.objects.list("manifests/"))  # before the catalog: see above
    known = {manifest_key(v.manifest_id) for v in _versions(ctx)}
    known |= retired_keys(ctx)  # a replaced manifest a reader may still use: swept separately
    known |= {manifest_key(m) for m in _bases(ctx)}
    orphans = [obj for obj in stored if obj.key not in known]
    doomed = [obj.key for obj in _collectable(ctx, orphans, report, cutoff)]
    for key in doomed:
        ctx.store.objects.delete(key)
    ctx.store.index.deleted(doomed)
    return len(doomed)


def _bases(ctx: Context) -> set[str]:
    """The manifests that a version's manifest, or a retired one, is a delta against."""
    named = [v.manifest_id for v in _versions(ctx)]
    named += [k.rsplit("/", 1)[-1] for k in retired_keys(ctx) if k.startswith("manifests/")]
    return ctx.store.bases_needed(named)


def _collectable(
    ctx: Context,
    objects: Iterator[ObjectInfo] | list[ObjectInfo],
    report: GcReport,
    cutoff: float,
    live: dict[str, int] | None = None,
) -> Iterator[ObjectInfo]:
    """The objects gc may touch: written by this installation and last written before
    ``cutoff`` (now less the grace period). The others are counted in ``report``: as live if
    ``live`` says a pack holds live blobs, else as kept."""
    listed = list(objects)
    mine = ctx.store.index.wrote([obj.key for obj in listed])
    for obj in listed:
        if obj.key in mine and obj.modified <= cutoff:
            yield obj
            continue
        if live is not None and live.get(obj.key.rsplit("/", 1)[-1], 0):
            report.live_packs += 1
            report.live_bytes += obj.size
            continue
        if obj.key not in mine:
            report.kept_unknown += 1
            report.kept_unknown_bytes += obj.size
        else:
            report.kept_young += 1
            report.kept_young_bytes += obj.size


def _repack(
    ctx: Context,
    db: sqlite3.Connection,
    sparse: dict[str, int],
    versions: list[VersionInfo],
    report: GcReport,
) -> None:
    """Copy the live blobs of ``sparse`` packs into new packs (``grid.store.repack``), swap
    the rewritten manifests in, then retire the old packs and manifests."""

    def wanted(pack_id: str) -> set[tuple[int, int]]:
        return set(db.execute("SELECT offset, stored FROM live WHERE pack = ?", (pack_id,)))

    copied = copy_live(ctx.store, sparse, wanted)
    report.bytes_copied += copied.bytes_copied
    report.packs_repacked += len(sparse)
    report.bytes_reclaimed += sum(sparse.values())
    readers: dict[str, list[str]] = {p: [] for p in sparse}  # pack -> versions pointing in
    for v in versions:
        manifest = ctx.store.open_manifest(v.manifest_id)
        try:
            touched = [p for p in manifest.pack_ids if p in sparse]
        finally:
            manifest.close()
        for p in touched:
            readers[p].append(v.ref)
        if touched:
            new_id, stored = rewrite_manifest(
                ctx.store, v.manifest_id, copied.moved, ctx.scratch_path
            )
            report.bytes_copied += stored
            ctx.catalog.set_manifest(v.datastore, v.number, new_id)
            retire(ctx, [(manifest_key(v.manifest_id), [v.ref])])
            report.manifests_rewritten += 1
    # Out of the index at once (dedup must not find them); the objects go once unread.
    gone = ctx.store.index.forget_unleased(list(sparse))
    retire(ctx, [(pack_key(p), readers[p]) for p in gone])
    for new in copied.written:  # indexed once the old copies are gone, so dedup finds the new ones
        ctx.store.index.add_pack(new.pack_id, new.size, new.blobs)
        report.live_packs += 1  # what the repack wrote is in use
        report.live_bytes += new.size
        report.bytes_reclaimed -= new.size  # given back: what the sparse packs held beyond it


def _predict_repacked(db: sqlite3.Connection, sparse: dict[str, int], report: GcReport) -> None:
    """Count into a dry run's in-use figures the packs a repack of ``sparse`` would write:
    their live blobs with their trailer entries, in packs of ``TARGET_SIZE``."""
    blobs, stored = 0, 0
    for pack_id in sparse:
        n, total = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(stored), 0) FROM live WHERE pack = ?", (pack_id,)
        ).fetchone()
        blobs, stored = blobs + n, stored + total
    if blobs:
        size = stored + blobs * ENTRY.size
        packs = -(-size // TARGET_SIZE)
        report.live_packs += packs
        report.live_bytes += size + packs * FRAME_BYTES
        report.bytes_reclaimed -= size + packs * FRAME_BYTES
