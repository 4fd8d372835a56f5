"""Runs and sessions as tables and text (``grid run list|show``, ``grid session list``, the
lineage under ``grid datastore show NAME:VERSION``)."""

from __future__ import annotations

import shlex
from datetime import datetime

from rich.table import Table
from rich.text import Text

from grid.cli.render import columns_table, safe_name, safe_text, when
from grid.records import RunInfo

_STYLE = {"succeeded": "green", "failed": "red", "lost": "red", "running": "cyan"}


def status(run: RunInfo) -> str:
    style = _STYLE.get(run.status, "yellow")
    return f"[{style}]{run.status}[/{style}]"


def duration(run: RunInfo, now: datetime | None = None) -> str:
    """How long it ran (so far)."""
    if run.started_at is None:
        return "-"
    end = run.ended_at or now or datetime.now(run.started_at.tzinfo)
    seconds = int((end - run.started_at).total_seconds())
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def attached(run: RunInfo) -> str:
    return ", ".join(a.ref for a in run.datastores if a.detached_at is None) or "-"


def runs_table(items: list[RunInfo]) -> Table:
    table = columns_table(
        "id",
        "name",
        "status",
        "exit",
        "datastores",
        "executor",
        "host",
        "started",
        "took",
        fold="datastores",
    )
    for r in items:
        table.add_row(
            str(r.id),
            Text(safe_name(r.name)),
            status(r),
            "-" if r.exit_code is None else str(r.exit_code),
            Text(safe_name(attached(r))),
            r.executor + (f" ({r.job_id})" if r.job_id else ""),
            Text(safe_name(r.host)),
            when(r.started_at or r.created_at),
            duration(r),
        )
    return table


def lineage_table(items: list[RunInfo]) -> Table:
    table = columns_table("used by", "id", "name", "user", "status", "started", fold="name")
    for r in items:
        table.add_row(
            r.kind,
            str(r.id),
            Text(safe_name(r.name)),
            Text(safe_name(r.user)),
            status(r),
            when(r.started_at or r.created_at),
        )
    return table


def describe(run: RunInfo) -> list[tuple[str, str]]:
    """``grid run show``: one line per field."""
    rows = [
        ("id", str(run.id)),
        ("kind", run.kind),
        ("name", run.name),
        ("user", run.user),
        ("status", run.status),
        ("exit code", "-" if run.exit_code is None else str(run.exit_code)),
        ("command", shlex.join(run.command)),
        ("executor", run.executor + (f" (job {run.job_id})" if run.job_id else "")),
        ("host", run.host),
        ("created", when(run.created_at)),
        ("started", when(run.started_at)),
        ("ended", when(run.ended_at)),
        ("log", run.log_path or "-"),
    ]
    for a in run.datastores:
        gone = f" (detached {when(a.detached_at)})" if a.detached_at else ""
        rows.append(("datastore", f"{a.ref} at {a.path}{gone}"))
    if run.detail("error"):
        rows.append(("error", run.detail("error")))
    return [(k, safe_text(v)) for k, v in rows]
