"""The jobs that make versions from sources a server fetches itself (``import``: an archive
URL or an ``s3://`` prefix) and the owner's ``gc``, as ``grid.server.worker`` runs them, and
the pieces the other kinds share (the owner a job works for, an import's options).

An import is idempotent: taken over from a dead worker, it resumes the same version (its
create's lease lapsed too), reading only what is missing; taken over after its version
succeeded but before its end was recorded, it answers with that version.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections.abc import Callable
from typing import Any

from grid.errors import DatastoreNotFoundError, GridError
from grid.records import SUCCEEDED, JobInfo, VersionInfo
from grid.reports import Progress
from grid.server.access import OwnerView
from grid.server.reading import owner_context
from grid.server.state import ServerState
from grid.service import create
from grid.sources.archive_rules import ArchiveLimits
from grid.tree import Warn

Report = Callable[[dict[str, Any]], None]


def import_into(
    state: ServerState,
    view: OwnerView,
    name: str,
    source: str,
    options: create.SourceOptions,
    *,
    progress: Progress | None = None,
    warn: Warn | None = None,
    skip_unchanged: bool = False,
) -> VersionInfo:
    """Make (or resume) the next version of ``view``'s ``name`` from ``source``, in a scratch
    folder of its own (``grid.service.server_import``)."""
    from grid.service.server_import import import_source

    scratch = os.path.join(state.scratch, f"import-{uuid.uuid4().hex}")
    ctx = owner_context(state, view, scratch)
    try:
        return import_source(
            ctx,
            state.packs,
            view.id,
            source,
            name,
            options=options,
            progress=progress,
            warn=warn,
            skip_unchanged=skip_unchanged,
        )
    finally:
        ctx.store.close()
        shutil.rmtree(scratch, ignore_errors=True)


def owner_view(state: ServerState, job: JobInfo) -> OwnerView:
    """The owner a job works for."""
    owner_id = state.catalog.owner_id_of(job.owner)
    if owner_id is None:
        raise GridError(f"owner {job.owner!r} is gone")
    return OwnerView(job.owner, owner_id, state.catalog.acting_for(owner_id))


def options_of(state: ServerState, payload: dict[str, Any]) -> create.SourceOptions:
    """An import's options as a job's payload has them (the accepting server's limits)."""
    limits = payload.get("limits")
    return create.SourceOptions(
        endpoint_url=payload.get("endpoint_url"),
        limits=ArchiveLimits(**limits) if limits else state.limits,
        keep_root=bool(payload.get("keep_root")),
    )


def _made_by_earlier_try(state: ServerState, view: OwnerView, job: JobInfo) -> VersionInfo | None:
    """The version an earlier try of ``job`` made before it died unrecorded (after its create
    succeeded): the newest succeeded one of the job's source made since the job was queued,
    its packs registered now (the dead try may not have); None on a first try."""
    from grid.service.server_import import register_packs

    if job.attempts < 2:
        return None
    try:
        versions = view.catalog.versions(job.payload["name"])
    except DatastoreNotFoundError:
        return None
    made = [
        v
        for v in versions
        if v.status == SUCCEEDED and v.source == job.payload["source"]
        and v.created_at >= job.created_at
    ]  # fmt: skip
    if not made:
        return None
    scratch = os.path.join(state.scratch, f"import-{uuid.uuid4().hex}")
    ctx = owner_context(state, view, scratch)
    try:
        register_packs(ctx, state.packs, view.id, made[-1].manifest_id)
    finally:
        ctx.store.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return made[-1]


def import_job(state: ServerState, job: JobInfo, report: Report) -> dict[str, Any]:
    """Make (or resume) the version the payload asks for, reporting its progress; its record
    as the result."""
    p = job.payload
    view = owner_view(state, job)
    earlier = _made_by_earlier_try(state, view, job)
    if earlier is not None:
        return {"version": dataclasses.asdict(earlier)}
    rules = dataclasses.replace(state, allow_private_urls=bool(p.get("allow_private_urls")))
    version = import_into(
        rules,
        view,
        p["name"],
        p["source"],
        options_of(state, p),
        progress=lambda made: report(dataclasses.asdict(made)),
        skip_unchanged=bool(p.get("skip_unchanged")),
    )
    return {"version": dataclasses.asdict(version)}


def gc_job(state: ServerState, job: JobInfo, report: Report) -> dict[str, Any]:
    """gc of the job's owner (``grid.service.server_gc``); its report."""
    from grid.service.publish import OwnerArea
    from grid.service.server_gc import collect

    view = owner_view(state, job)
    done = collect(
        OwnerArea(state.objects, view.name, view.id),
        state.packs,
        view.catalog,
        state.scratch,
        grace=float(job.payload["grace"]),
        now_utc=view.catalog.now(),
        dry_run=bool(job.payload["dry_run"]),
    )
    return {"report": dataclasses.asdict(done)}
