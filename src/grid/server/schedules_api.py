"""The schedule endpoints: re-imports of an archive URL or ``s3://`` prefix that the server
keeps and its workers run (``grid.server.scheduled``), set and removed per datastore by those
who may write it, listed for the caller's owners.

A schedule is checked as an import is when it is set (the source's kind, the server's address
and bucket rules, the archive limits, which may only be lowered), so a bad one is refused
now rather than failing at every turn.
"""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request, Response
from pydantic import Field

from grid.catalog.schedules import ScheduleBook
from grid.records import ScheduleInfo
from grid.server.auth import Caller
from grid.server.imports_api import ImportIn, check_import
from grid.server.state import server_state
from grid.sources.archive import is_url
from grid.sources.http import check_url

router = APIRouter()
MIN_EVERY, MAX_EVERY = 300, 7 * 86400


class ScheduleIn(ImportIn):
    """An import to repeat every ``every_seconds``, keeping the ``keep_last`` newest."""

    every_seconds: int = Field(ge=MIN_EVERY, le=MAX_EVERY)
    keep_last: int | None = Field(default=None, ge=1, le=1_000_000)


@router.put("/v1/datastores/{owner}/{name}/schedule")
def set_schedule(
    request: Request, caller: Caller, owner: str, name: str, body: ScheduleIn
) -> ScheduleInfo:
    """Add or replace the schedule of ``owner/name``; its first turn is due at once."""
    state = server_state(request)
    view, limits = check_import(state, caller, owner, name, body)
    if is_url(body.source):  # now, not at every turn
        check_url(body.source, state.allow_private_urls)
    options = {
        "endpoint_url": body.endpoint_url,
        "keep_root": body.keep_root,
        "limits": dataclasses.asdict(limits),
        "allow_private_urls": state.allow_private_urls,  # this server's rule, for any worker
    }
    book = ScheduleBook(state.catalog)
    return book.put(view.id, name, body.source, body.every_seconds, body.keep_last, options)


@router.delete("/v1/datastores/{owner}/{name}/schedule", status_code=204)
def remove_schedule(request: Request, caller: Caller, owner: str, name: str) -> Response:
    """Remove the schedule of ``owner/name`` (a turn under way finishes)."""
    state = server_state(request)
    view = state.access.owner(caller, owner, name)
    ScheduleBook(state.catalog).remove(view.id, name)
    return Response(status_code=204)


@router.get("/v1/schedules")
def list_schedules(request: Request, caller: Caller) -> list[ScheduleInfo]:
    """The schedules of the caller's owners (themself, then their teams)."""
    state = server_state(request)
    ids = [state.catalog.owner_id_of(o) for o in state.access.visible(caller)]
    return ScheduleBook(state.catalog).list([i for i in ids if i is not None])
