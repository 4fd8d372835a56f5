"""Datastores and versions as tables, text and JSON (``grid datastore list`` and ``show``),
with the storage each one accounts for (``grid.service.usage``; terms in the README).

``added``: what a version's create stored that the store did not have; for a datastore, its
versions' sum. ``exclusive``: what a version (or datastore) alone uses now, which deleting it
and running gc gives back. The store line adds up every pack and manifest.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from grid.cli.render import columns_table, human_bytes, jsonable, safe_name, safe_text, status, when
from grid.records import DatastoreInfo, VersionInfo
from grid.reports import UsageReport


def datastores_table(
    items: list[DatastoreInfo], usage: UsageReport, *, added: bool = True
) -> Table:
    """The ``list`` table; without ``added`` (a narrow terminal: ``show`` and ``--json`` give
    it) rather than folding the names."""
    headers = ["name", "latest", "versions", "files", "size", "added", "exclusive"]
    table = columns_table(
        *(h for h in headers if added or h != "added"), "status", "created", fold="name"
    )
    for d in items:
        v, share = d.latest, usage.of_datastore(d.name)
        cells: list[Any] = [
            Text(safe_name(d.name)),
            str(v.number) if v else "-",
            str(d.versions),
            f"{v.files:,}" if v else "-",
            human_bytes(v.size) if v else "-",
        ]
        if added:
            cells.append(human_bytes(share.added_bytes) if share else "-")
        cells.append(human_bytes(share.exclusive_bytes) if share else "-")
        table.add_row(*cells, status(v) if v else "-", when(v.created_at if v else d.created_at))
    return table


def versions_table(items: list[VersionInfo], usage: UsageReport) -> Table:
    table = columns_table(
        "version",
        "status",
        "files",
        "size",
        "added",
        "exclusive",
        "created",
        "finished",
        "reason",
        fold="reason",
    )
    for v in items:
        share = usage.of_version(v.datastore, v.number)
        table.add_row(
            str(v.number),
            status(v),
            f"{v.files:,}",
            human_bytes(v.size),
            human_bytes(v.stored_bytes),
            human_bytes(share.exclusive_bytes) if share else "-",
            when(v.created_at),
            when(v.finished_at),
            Text(safe_text(v.reason or "")),
        )
    return table


def store_line(usage: UsageReport) -> str:
    """The store's total, in one line under ``list``."""
    return (
        f"store: {human_bytes(usage.stored_bytes)} in {_count(usage.packs, 'pack')} and "
        f"{_count(usage.manifests, 'manifest')}; {human_bytes(usage.referenced_bytes)} used by "
        f"versions, {human_bytes(usage.unreferenced_bytes)} for gc to give back"
    )


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def datastore_line(name: str, usage: UsageReport) -> str | None:
    """A datastore's share, in one line under ``show NAME``."""
    share = usage.of_datastore(name)
    if share is None:
        return None
    return (
        f"{safe_name(name)}: {human_bytes(share.added_bytes)} added by its versions; "
        f"{human_bytes(share.exclusive_bytes)} used by no other datastore "
        f"(what deleting it, then gc, gives back)"
    )


def datastores_json(items: list[DatastoreInfo], usage: UsageReport) -> list[dict[str, Any]]:
    """``list --json``: each datastore with its ``added_bytes`` and ``exclusive_bytes``."""
    out = []
    for d in items:
        share = usage.of_datastore(d.name)
        out.append(
            {
                **jsonable(d),
                "added_bytes": share.added_bytes if share else 0,
                "exclusive_bytes": share.exclusive_bytes if share else 0,
            }
        )
    return out


def version_json(v: VersionInfo, usage: UsageReport) -> dict[str, Any]:
    """A version for ``show --json``, with ``exclusive_bytes`` (None unless succeeded)."""
    share = usage.of_version(v.datastore, v.number)
    return {**jsonable(v), "exclusive_bytes": share.exclusive_bytes if share else None}
