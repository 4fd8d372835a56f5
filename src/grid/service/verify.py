"""Verify a version: re-read and re-hash every blob it uses, and name the damaged files; for an
object a ``--no-copy`` version references, check its pin (a HEAD: still there, as pinned)."""

from __future__ import annotations

from collections.abc import Callable

from grid.errors import IntegrityError
from grid.reports import VerifyReport
from grid.service.browse import opened
from grid.service.context import Context
from grid.store.compression import PINNED
from grid.store.manifest import FILE, BlobLocation

_BATCH_BYTES = 16 << 20
_Item = tuple[str, list[BlobLocation]]


def verify(
    ctx: Context,
    name: str,
    number: int | None,
    progress: Callable[[VerifyReport], None] | None = None,
) -> VerifyReport:
    """Read every blob of a version back from the store and check it against its id.

    Returns:
        A report; ``report.ok`` is False when any file is damaged (missing or altered blobs).
    """
    with opened(ctx, name, number) as (version, manifest):
        report = VerifyReport(version)
        batch: list[_Item] = []
        size = 0
        for entry in manifest.walk():
            if entry.kind != FILE:
                continue
            batch.append((entry.path, manifest.blobs(entry)))
            size += entry.size
            if size >= _BATCH_BYTES:
                _check(ctx, batch, report)
                batch, size = [], 0
                if progress is not None:
                    progress(report)
        _check(ctx, batch, report)
    return report


def _check(ctx: Context, batch: list[_Item], report: VerifyReport) -> None:
    pinned: list[_Item] = []  # objects referenced where they are: each pin checked, no read
    stored: list[_Item] = []
    for path, bl in batch:
        (pinned if bl and bl[0].codec == PINNED else stored).append((path, bl))
    if pinned:
        gone = ctx.store.check_pins(sorted({bl[0].pack_id for _, bl in pinned}))
        for path, bl in pinned:
            if bl[0].pack_id in gone:
                report.damaged[path] = gone[bl[0].pack_id]
            report.files += 1
            report.bytes += sum(b.raw_length for b in bl)
    batch = stored
    blobs = [b for _, bl in batch for b in bl]
    try:
        ctx.store.read_blobs(blobs)
        bad: dict[int, str] = {}
    except IntegrityError:
        bad = {}  # find out which blobs, one by one (rare path)
        for i, blob in enumerate(blobs):
            try:
                ctx.store.read_blob(blob, cached=False)
            except IntegrityError as exc:
                bad[i] = exc.message
    i = 0
    for path, bl in batch:
        problems = [bad[k] for k in range(i, i + len(bl)) if k in bad]
        if problems:
            report.damaged[path] = problems[0]
        report.files += 1
        report.bytes += sum(b.raw_length for b in bl)
        i += len(bl)
