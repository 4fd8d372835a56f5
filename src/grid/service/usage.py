"""Storage accounting: what each version and datastore added to the store, what each alone
uses now (what deleting it and running gc gives back), and the store's total.

Blobs are counted once however many files, versions or datastores use them: every succeeded
version's blob list is streamed into a scratch SQLite table keyed by (pack, offset), as gc
marks, so memory stays flat. A blob costs its stored bytes and its pack trailer entry; a pack
whose every referenced blob one version uses adds its fixed frame to that version. A manifest
object counts for every version that needs it: its own, and those a delta manifest is made
against (``grid.store.manifest_object``). The same ``measure`` runs on an embedded store and,
for each owner, on a team-mode server (``grid.server.objects_api``).

The embedded report is kept in the installation's scratch folder, keyed by every version's
status, manifest and size: ``list`` and ``show`` pay for the walk once per change of the
catalog. gc, which changes the store without changing a version, removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING

from grid.errors import GridError, NotFoundError, sqlite_error
from grid.objects import ObjectInfo
from grid.records import SUCCEEDED, VersionInfo
from grid.reports import DatastoreUsage, UsageReport, VersionUsage
from grid.service.catalog_port import CatalogPort
from grid.service.context import Context
from grid.service.listing import all_versions
from grid.store.blob_check import unpacked_manifest
from grid.store.manifest_store import manifest_key
from grid.store.pack import ENTRY, FRAME_BYTES

if TYPE_CHECKING:
    from grid.service.publish import OwnerArea

SCRATCH = "usage-"  # scratch tables and kept reports in the installation's tmp folder
_CACHE_FORMAT = 1
_TRIES = 3  # a gc may swap a manifest out between reading the catalog and opening it
_KEEP_OWNERS = 64  # a server keeps the last reports of this many owners' states
_KEPT: OrderedDict[tuple[int, str, bytes], UsageReport] = OrderedDict()
_KEPT_LOCK = threading.Lock()

Spans = Callable[[str], Iterator[tuple[str, int, int]]]


def measure(
    versions: list[VersionInfo],
    packs: Iterable[ObjectInfo],
    manifests: Iterable[ObjectInfo],
    spans: Spans,
    bases: Callable[[str], list[str]],
    scratch: str,
) -> UsageReport:
    """The usage of a store holding ``packs`` and ``manifests`` (objects listed) with
    ``versions`` (of every status). ``spans(manifest_id)`` yields the (pack, offset, stored)
    of every blob a manifest's files use; ``bases(manifest_id)`` the manifests it is a delta
    against; ``scratch``: a path for the scratch table."""
    report = UsageReport()
    for obj in packs:
        report.packs += 1
        report.stored_bytes += obj.size
    sizes: dict[str, int] = {}
    for obj in manifests:
        report.manifests += 1
        report.stored_bytes += obj.size
        sizes[obj.key.rsplit("/", 1)[-1]] = obj.size
    live = [v for v in versions if v.status == SUCCEEDED]
    db = sqlite3.connect(scratch)
    try:
        exclusive, by_ds, referenced = _blobs(db, live, spans)
    except sqlite3.Error as exc:
        raise sqlite_error(exc, f"write the scratch table {scratch}") from exc
    finally:
        db.close()
        with contextlib.suppress(OSError):
            os.unlink(scratch)
    needed: dict[str, set[tuple[str, int]]] = defaultdict(set)  # manifest -> versions needing it
    for v in versions:
        if v.manifest_id in sizes:
            for m in [v.manifest_id, *bases(v.manifest_id)]:
                needed[m].add((v.datastore, v.number))
    for m, users in needed.items():
        referenced += sizes.get(m, 0)
        if len(users) == 1:
            exclusive[next(iter(users))] += sizes.get(m, 0)
        if len({ds for ds, _ in users}) == 1:
            by_ds[next(iter(users))[0]] += sizes.get(m, 0)
    report.referenced_bytes = referenced
    report.versions = [
        VersionUsage(v.datastore, v.number, v.stored_bytes, exclusive[(v.datastore, v.number)])
        for v in live
    ]
    added: dict[str, int] = defaultdict(int)
    for v in live:
        added[v.datastore] += v.stored_bytes
    names = sorted({v.datastore for v in versions})
    report.datastores = [DatastoreUsage(n, added[n], by_ds[n]) for n in names]
    return report


def _blobs(
    db: sqlite3.Connection, live: list[VersionInfo], spans: Spans
) -> tuple[dict[tuple[str, int], int], dict[str, int], int]:
    """Mark the blobs of ``live`` versions: (bytes each version alone uses, by (datastore,
    number); bytes each datastore alone uses; bytes referenced)."""
    db.execute(
        "CREATE TABLE blobs (pack TEXT, offset INTEGER, cost INTEGER, ver INTEGER, ds TEXT,"
        " many_ver INTEGER, many_ds INTEGER, PRIMARY KEY (pack, offset)) WITHOUT ROWID"
    )
    upsert = (
        "INSERT INTO blobs VALUES (?, ?, ?, ?, ?, 0, 0) ON CONFLICT (pack, offset) DO UPDATE"
        " SET many_ver = many_ver OR ver != excluded.ver, many_ds = many_ds OR ds != excluded.ds"
    )
    for i, v in enumerate(live):
        rows = ((p, o, s + ENTRY.size, i, v.datastore) for p, o, s in spans(v.manifest_id))
        db.executemany(upsert, rows)
    by_version: dict[int, int] = defaultdict(int)
    by_ds: dict[str, int] = defaultdict(int)
    q = "SELECT ver, SUM(cost) FROM blobs WHERE NOT many_ver GROUP BY ver"
    for i, cost in db.execute(q):
        by_version[i] += cost
    for ds, cost in db.execute("SELECT ds, SUM(cost) FROM blobs WHERE NOT many_ds GROUP BY ds"):
        by_ds[ds] += cost
    referenced = db.execute("SELECT COALESCE(SUM(cost), 0) FROM blobs").fetchone()[0]
    packs = db.execute(
        "SELECT MIN(ver), MAX(ver), MAX(many_ver), MIN(ds), MAX(ds), MAX(many_ds)"
        " FROM blobs GROUP BY pack"
    )
    for low, high, many, ds_low, ds_high, many_ds in packs:
        referenced += FRAME_BYTES
        if low == high and not many:
            by_version[low] += FRAME_BYTES
        if ds_low == ds_high and not many_ds:
            by_ds[ds_low] += FRAME_BYTES
    exclusive: dict[tuple[str, int], int] = defaultdict(int)
    for i, cost in by_version.items():
        exclusive[(live[i].datastore, live[i].number)] = cost
    return exclusive, by_ds, referenced


def usage(ctx: Context) -> UsageReport:
    """The usage of ``ctx``'s store (embedded): the kept report while no version changed,
    else measured again and kept. A manifest that cannot be read (missing, damaged) counts
    for nothing rather than failing ``list``; such a report is not kept."""
    for attempt in range(_TRIES):
        versions = all_versions(ctx.catalog)
        key = _fingerprint(versions)
        path = ctx.scratch_path(_kept_name(ctx))
        kept = _load(path, key)
        if kept is not None:
            return kept
        last = attempt + 1 == _TRIES
        skipped: list[str] = []
        try:
            report = measure(
                versions,
                ctx.store.objects.list("packs/"),
                ctx.store.objects.list("manifests/"),
                _tolerant_spans(ctx, skipped, not last),
                _tolerant_bases(ctx, skipped),
                ctx.scratch_path(f"{SCRATCH}{uuid.uuid4().hex}.sqlite"),
            )
        except NotFoundError:  # a manifest gc swapped out meanwhile: read the catalog again
            continue
        if not skipped:
            _save(path, key, report)
        return report
    raise AssertionError("unreachable")


def _tolerant_spans(ctx: Context, skipped: list[str], missing_raises: bool) -> Spans:
    """``_spans``, a manifest that cannot be read counting as what was read of it (recorded
    in ``skipped``); with ``missing_raises``, a missing one still raises (gc may have
    swapped it: retry)."""

    def spans(manifest_id: str) -> Iterator[tuple[str, int, int]]:
        try:
            yield from _spans(ctx, manifest_id)
        except NotFoundError:
            if missing_raises:
                raise
            skipped.append(manifest_id)
        except GridError:
            skipped.append(manifest_id)

    return spans


def _tolerant_bases(ctx: Context, skipped: list[str]) -> Callable[[str], list[str]]:
    def bases(manifest_id: str) -> list[str]:
        try:
            return ctx.store.manifest_bases(manifest_id)
        except GridError:
            skipped.append(manifest_id)
            return []

    return bases


def owner_usage(area: OwnerArea, catalog: CatalogPort, scratch: str) -> UsageReport:
    """The usage of one owner's part of a team-mode server's storage (whole manifests only:
    no bases); ``scratch``: the server's folder for files being read. The report is kept in
    this process while the owner's versions and objects stay the same."""

    skipped: list[str] = []

    def spans(manifest_id: str) -> Iterator[tuple[str, int, int]]:
        try:
            data = area.objects.get(area.key(manifest_key(manifest_id)))
            with unpacked_manifest(data, scratch) as manifest:
                yield from manifest.blob_spans()
        except GridError:  # missing or damaged: counts for nothing (gc reports it)
            skipped.append(manifest_id)

    versions = all_versions(catalog)
    packs = list(area.objects.list(area.key("packs/")))
    manifests = list(area.objects.list(area.key("manifests/")))
    listed = sorted((o.key, o.size) for o in (*packs, *manifests))
    key = (area.owner_id, _fingerprint(versions), hashlib.sha256(repr(listed).encode()).digest())
    with _KEPT_LOCK:
        kept = _KEPT.get(key)
    if kept is not None:
        return kept
    os.makedirs(scratch, exist_ok=True)
    report = measure(
        versions,
        packs,
        manifests,
        spans,
        lambda _manifest_id: [],
        os.path.join(scratch, f"{SCRATCH}{uuid.uuid4().hex}.sqlite"),
    )
    if not skipped:
        with _KEPT_LOCK:
            _KEPT[key] = report
            while len(_KEPT) > _KEEP_OWNERS:
                _KEPT.popitem(last=False)
    return report


def forget(ctx: Context) -> None:
    """Drop the kept report (gc changed the store under unchanged versions)."""
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(ctx.scratch_dir, _kept_name(ctx)))


def _kept_name(ctx: Context) -> str:
    """The kept report's file: one per store (owners of one home share its tmp folder)."""
    return f"{SCRATCH}{hashlib.sha256(ctx.store.index.path.encode()).hexdigest()[:16]}.json"


def _spans(ctx: Context, manifest_id: str) -> Iterator[tuple[str, int, int]]:
    manifest = ctx.store.open_manifest(manifest_id)
    try:
        yield from manifest.blob_spans()
    finally:
        manifest.close()


def _fingerprint(versions: list[VersionInfo]) -> str:
    rows = sorted(
        (v.datastore, v.number, v.status, v.manifest_id, v.stored_bytes) for v in versions
    )
    return hashlib.sha256(json.dumps([_CACHE_FORMAT, rows]).encode()).hexdigest()


def _load(path: str, key: str) -> UsageReport | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return UsageReport.from_dict(data["report"]) if data.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or torn: measure again
        return None


def _save(path: str, key: str, report: UsageReport) -> None:
    """Keep ``report`` (best effort: a full disk only costs the next command a walk)."""
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump({"key": key, "report": asdict(report)}, f)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
