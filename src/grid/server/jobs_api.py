"""The job endpoints: the work a server's workers do for a caller's owners (their own and
their teams'), listed, shown and cancelled. Others' jobs are answered as if they did not
exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from grid.catalog.jobs import JobQueue
from grid.records import JobInfo, Principal
from grid.server.auth import Caller
from grid.server.state import server_state

router = APIRouter(prefix="/v1/jobs")


def _owner_ids(request: Request, caller: Principal) -> list[int]:
    catalog = server_state(request).catalog
    ids = (catalog.owner_id_of(owner) for owner in server_state(request).access.visible(caller))
    return [i for i in ids if i is not None]


def _queue(request: Request) -> JobQueue:
    return JobQueue(server_state(request).catalog)


@router.get("")
def list_jobs(
    request: Request, caller: Caller, limit: Annotated[int, Query(ge=1, le=10000)] = 1000
) -> list[JobInfo]:
    """The newest jobs of the caller's owners, newest first."""
    return _queue(request).list(_owner_ids(request, caller), limit)


@router.get("/{job_id}")
def show_job(request: Request, caller: Caller, job_id: int) -> JobInfo:
    """One job of the caller's owners."""
    return _queue(request).get(job_id, _owner_ids(request, caller))


@router.post("/{job_id}/cancel")
def cancel_job(request: Request, caller: Caller, job_id: int) -> JobInfo:
    """Cancel a job that has not ended: a queued one never runs, a running one's worker stops
    at its next lease renewal (what it made so far stays resumable, as after a crash)."""
    return _queue(request).cancel(job_id, _owner_ids(request, caller))
