"""Team mode: give back the space of an owner's deleted versions, on the server.

A pack is deleted only if no succeeded version of the owner uses it, it was registered longer
ago than the grace period, and no create of the owner holds a live lease (one may be about to
commit a version that reuses an old pack). That last check is made again in the transaction
that unregisters the pack (``PackRegistry.drop_unless_busy``, which serialises with every new
version on the owner's row), and the pack is recorded as gone there: a create learns what its
owner stores only once it holds its lease, forgetting gone packs, so it never reuses one
dropped. The pack object is deleted after. Uploads no commit took (a create given up on), older
than the grace period, go too, also only while no create runs (and so do the parts of a
browser's upload given up on); a create resumed later uploads them again. Packs are not
repacked in team mode (yet).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from grid.catalog.packs import PackRegistry
from grid.errors import GridError, IntegrityError, NotFoundError
from grid.records import SUCCEEDED, UNFINISHED
from grid.reports import GcReport
from grid.service.catalog_port import CatalogPort
from grid.service.publish import OwnerArea
from grid.store.blob_check import unpacked_manifest
from grid.store.pack import pack_key
from grid.store.repository import manifest_key


def collect(
    area: OwnerArea,
    packs: PackRegistry,
    catalog: CatalogPort,
    scratch: str,
    *,
    grace: float,
    now_utc: datetime,
    dry_run: bool = False,
) -> GcReport:
    """Delete the owner's packs that nothing needs (see the module docstring).

    Raises:
        IntegrityError: a succeeded version's manifest is missing or damaged (nothing is
            deleted: what it uses cannot be told).
    """
    live: set[str] = set()
    manifests: set[str] = set()
    busy = False
    for ds in catalog.datastores():
        for v in catalog.versions(ds.name):
            manifests.add(v.manifest_id)
            if v.status == SUCCEEDED:
                live.update(_packs_of(area, v.manifest_id, scratch))
            elif v.status in UNFINISHED and v.lease_expires_at and v.lease_expires_at > now_utc:
                busy = True
    report = GcReport()
    cutoff = now_utc - timedelta(seconds=grace)
    doomed = []
    listing = packs.listing(area.owner_id)
    for pack_id, size, registered, verified in listing:
        if pack_id in live or not verified:
            report.live_packs += pack_id in live
            report.live_bytes += size if pack_id in live else 0
        elif registered > cutoff or busy:
            report.kept_young += 1
            report.kept_young_bytes += size
        else:
            doomed.append((pack_id, size))
    for pack_id, size in doomed:
        if not dry_run and not packs.drop_unless_busy(area.owner_id, pack_id):
            report.kept_young += 1  # a create began meanwhile: the next gc looks again
            report.kept_young_bytes += size
            continue
        report.packs_deleted += 1
        report.bytes_reclaimed += size
        if not dry_run:
            with contextlib.suppress(GridError):
                area.objects.delete(area.key(pack_key(pack_id)))
    if not busy:
        known = {row[0] for row in listing} | manifests | live  # live: even unregistered
        _clear_uploads(area, known, cutoff.timestamp(), report, dry_run)
    return report


def _clear_uploads(
    area: OwnerArea, known: set[str], before: float, report: GcReport, dry_run: bool
) -> None:
    """Delete packs and manifests older than ``before`` that neither the pack record nor any
    version knows (uploads that no commit took), and the parts of browser uploads given up on
    (``grid.service.staged_upload``: a live one holds a lease, so gc waits)."""
    for folder in ("packs/", "manifests/", "uploads/"):
        for info in area.objects.list(area.key(folder)):
            if info.key.rsplit("/", 1)[-1] in known or info.modified >= before:
                continue
            report.retired_deleted += 1
            report.bytes_reclaimed += info.size
            if not dry_run:
                with contextlib.suppress(GridError):
                    area.objects.delete(info.key)


def _packs_of(area: OwnerArea, manifest_id: str, scratch: str) -> list[str]:
    try:
        data = area.objects.get(area.key(manifest_key(manifest_id)))
        with unpacked_manifest(data, scratch) as reader:
            return reader.pack_ids
    except (NotFoundError, IntegrityError) as exc:
        raise IntegrityError(f"manifest {manifest_id} is missing or damaged: {exc}") from exc
