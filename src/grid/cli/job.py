"""`grid job list|show|cancel`: the work a grid server's workers do for you and your teams
(imports of archive URLs and S3 prefixes, scheduled re-imports, gc)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from grid.cli import render
from grid.client import connect
from grid.records import JobInfo

app = typer.Typer(help="Work a grid server's workers do: imports, scheduled re-imports, gc.")
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
JobId = Annotated[int, typer.Argument(metavar="ID", help="The job's id (`grid job list`).")]
_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "red", "running": "cyan"}


def _state(job: JobInfo) -> str:
    style = _STYLE.get(job.state, "yellow")
    return f"[{style}]{job.state}[/{style}]"


def _what(job: JobInfo) -> str:
    """The datastore and source a job works on."""
    name, source = job.payload.get("name"), job.payload.get("source")
    owner = f"{job.owner}/" if job.owner else ""
    parts = [f"{owner}{name}" if name else job.kind, f"from {source}" if source else ""]
    return " ".join(p for p in parts if p)


def outcome(job: JobInfo) -> str:
    """What a job made: a version, nothing new, or why it failed."""
    version = job.result.get("version")
    if isinstance(version, dict):
        return f"{version.get('datastore')}:{version.get('number')}"
    if job.result.get("unchanged"):
        return "unchanged"
    return job.error or "-"


def _took(job: JobInfo) -> str:
    if job.started_at is None:
        return "-"
    end = job.finished_at or datetime.now(job.started_at.tzinfo)
    seconds = int((end - job.started_at).total_seconds())
    return f"{seconds // 60}:{seconds % 60:02d}"


def jobs_table(items: list[JobInfo]) -> Table:
    table = render.columns_table(
        "id", "kind", "datastore", "state", "tries", "made", "created", "took", fold="datastore"
    )
    for j in items:
        table.add_row(
            str(j.id),
            j.kind,
            Text(render.safe_name(_what(j))),
            _state(j),
            str(j.attempts),
            Text(render.safe_text(outcome(j))),
            render.when(j.created_at),
            _took(j),
        )
    return table


@app.command("list")
def list_(
    as_json: Json = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="At most N.")] = 100,
) -> None:
    """List the newest jobs of you and your teams: id, kind, datastore, state, what it made."""
    with connect() as client:
        items = client.jobs(limit)
    if as_json:
        render.print_json(items)
    elif not items:
        print(
            "no jobs: a grid server's workers run imports of URLs and S3 prefixes, schedules "
            "and gc (`grid login` first; an embedded installation runs its work itself)",
            file=sys.stderr,
        )
    else:
        render.show(jobs_table(items))


@app.command()
def show(job_id: JobId, as_json: Json = False) -> None:
    """Show a job: kind, datastore and source, state, tries, worker, times, outcome."""
    with connect() as client:
        job = client.job(job_id)
    if as_json:
        render.print_json(job)
        return
    progress = job.result.get("progress")
    rows = [
        ("id", str(job.id)),
        ("kind", job.kind),
        ("datastore", _what(job)),
        ("state", job.state),
        ("tries", str(job.attempts)),
        ("worker", job.worker or "-"),
        ("created", render.when(job.created_at)),
        ("started", render.when(job.started_at)),
        ("finished", render.when(job.finished_at)),
        ("made", outcome(job)),
    ]
    if isinstance(progress, dict) and job.state == "running":
        rows.append(("progress", ", ".join(f"{k} {v}" for k, v in progress.items() if v)))
    for key, value in rows:
        print(f"{key:<10} {render.safe_text(value)}")


@app.command()
def cancel(job_id: JobId) -> None:
    """Cancel a job that has not ended: a queued one never runs; a running one stops soon,
    and a create it began can be resumed by running it again."""
    with connect() as client:
        job = client.cancel_job(job_id)
    print(f"cancelled job {job.id} ({job.kind})")
