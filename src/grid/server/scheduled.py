"""The job of a schedule the server keeps (``grid.catalog.schedules``): look at the source,
make a version only when it changed, then apply the schedule's retention.

The look is the source's fingerprint (``grid.sources.fingerprint``: an archive URL's ETag,
Last-Modified and length, an S3 prefix's keys, ETags and sizes). The same fingerprint as at
the last version made means no import at all; a different one (or none to tell by) imports
with ``skip_unchanged``, so a tree equal to the latest version's still makes no version.
``--keep-last N`` then deletes the versions older than the N newest succeeded ones (a version
a run uses stays until a later turn).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from typing import Any

from grid.catalog.schedules import ScheduleBook
from grid.errors import DatastoreNotFoundError, GridError
from grid.records import SUCCEEDED, JobInfo
from grid.server.access import OwnerView
from grid.server.import_jobs import Report, import_into, options_of, owner_view
from grid.server.reading import owner_context
from grid.server.state import ServerState
from grid.service import delete
from grid.sources.fingerprint import fingerprint


def _latest(view: OwnerView, name: str) -> int:
    """The number of ``name``'s newest succeeded version (0: none)."""
    try:
        versions = view.catalog.versions(name)
    except DatastoreNotFoundError:
        return 0
    return max((v.number for v in versions if v.status == SUCCEEDED), default=0)


def schedule_job(state: ServerState, job: JobInfo, report: Report) -> dict[str, Any]:
    """One turn of a schedule; the version it made (``version``), or ``unchanged``."""
    p = job.payload
    book = ScheduleBook(state.catalog)
    source, known = book.get(int(p["schedule_id"]))
    if source != p["source"]:
        return {"unchanged": True, "skipped": "the schedule changed or was removed"}
    view = owner_view(state, job)
    rules = dataclasses.replace(state, allow_private_urls=bool(p.get("allow_private_urls")))
    seen = fingerprint(
        source, endpoint_url=p.get("endpoint_url"), allow_private=rules.allow_private_urls
    )
    before = _latest(view, p["name"])
    if seen and seen == known and before:
        return {"unchanged": True, "fingerprint": seen}
    version = import_into(
        rules,
        view,
        p["name"],
        source,
        options_of(state, p),
        progress=lambda made: report(dataclasses.asdict(made)),
        skip_unchanged=True,
    )
    book.record(int(p["schedule_id"]), source, seen)
    out: dict[str, Any] = {"fingerprint": seen}
    if version.number > before:
        out["version"] = dataclasses.asdict(version)
    else:
        out["unchanged"] = True
    if p.get("keep_last"):
        out["deleted"] = _keep_last(state, view, p["name"], int(p["keep_last"]))
    return out


def _keep_last(state: ServerState, view: OwnerView, name: str, keep: int) -> list[str]:
    """Delete what retention lets go; the refs deleted (one in use is kept, with a note)."""
    scratch = os.path.join(state.scratch, f"retention-{uuid.uuid4().hex}")
    ctx = owner_context(state, view, scratch)
    kept: list[str] = []
    try:
        removed = delete.keep_last(ctx, name, keep, warn=kept.append)
    except GridError as exc:  # retention must not undo the turn: the next one tries again
        return [f"retention failed: {exc.message}"]
    finally:
        ctx.store.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return [v.ref for v in removed] + kept
