"""What changed between two versions: added, removed and modified paths.

Both manifests are walked once, side by side, in storage order (depth first, names sorted), so
memory stays flat whatever the number of files. "Modified" means a different kind, content,
mode or link target; a new mtime alone is not a change. A file of a ``--no-copy`` version
has no content ids: where it has the size of the file it is compared with, its object is read
and cut as a create would, and compared by the ids that gives.
"""

from __future__ import annotations

from collections.abc import Iterator

from grid.reports import Change, DiffReport
from grid.service.browse import opened
from grid.service.context import Context
from grid.store import Store
from grid.store.compression import PINNED
from grid.store.manifest import DIR, Entry
from grid.store.manifest_reader import ManifestReader
from grid.store.referencing import content_ids


def _key(entry: Entry) -> tuple[str, ...]:
    return tuple(entry.path.split("/"))  # tuple order is storage order


def _same(store: Store, ma: ManifestReader, ea: Entry, mb: ManifestReader, eb: Entry) -> bool:
    if (ea.kind, ea.mode, ea.size, ea.target) != (eb.kind, eb.mode, eb.size, eb.target):
        return False
    if ea.kind == DIR:
        return True
    ba, bb = ma.blobs(ea), mb.blobs(eb)
    if [b.digest for b in ba] == [b.digest for b in bb]:
        return True
    if not any(b.codec == PINNED for b in (*ba, *bb)):
        return False
    # an object referenced where it is (--no-copy) has no content ids: read it to compare
    return content_ids(store, ba, ea.size) == content_ids(store, bb, eb.size)


def _pairs(ma: ManifestReader, mb: ManifestReader) -> Iterator[tuple[Entry | None, Entry | None]]:
    """Entries of both walks matched by path (None where a side lacks it)."""
    wa, wb = ma.walk(), mb.walk()
    ea, eb = next(wa, None), next(wb, None)
    while ea is not None or eb is not None:
        if eb is None or (ea is not None and _key(ea) < _key(eb)):
            yield ea, None
            ea = next(wa, None)
        elif ea is None or _key(eb) < _key(ea):
            yield None, eb
            eb = next(wb, None)
        else:
            yield ea, eb
            ea, eb = next(wa, None), next(wb, None)


def diff(ctx: Context, name: str, a: int | None, b: int | None) -> DiffReport:
    """Compare version ``a`` with version ``b`` of ``name`` (None: the latest succeeded)."""
    with opened(ctx, name, a) as (va, ma), opened(ctx, name, b) as (vb, mb):
        report = DiffReport(name, va.number, vb.number)
        for ea, eb in _pairs(ma, mb):
            if eb is None and ea is not None:
                report.removed.append(Change(ea.path, ea.kind_name, ea.size, None))
            elif ea is None and eb is not None:
                report.added.append(Change(eb.path, eb.kind_name, None, eb.size))
            elif ea is not None and eb is not None and not _same(ctx.store, ma, ea, mb, eb):
                report.modified.append(Change(eb.path, eb.kind_name, ea.size, eb.size))
    return report
