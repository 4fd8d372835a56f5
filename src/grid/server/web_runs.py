"""The runs and sessions page: the caller's, newest first, live, with a live session's
JupyterLab link."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from grid.server.state import server_state
from grid.server.web_common import page, signed_in, style, to_sign_in, when

router = APIRouter(include_in_schema=False)


@router.get("/ui/runs")
def runs_page(request: Request) -> Response:
    """The caller's runs and sessions, newest first (a live session links to its lab)."""
    from grid.catalog.runs import RunRegistry

    who = signed_in(request)
    if who is None:
        return to_sign_in()
    registry = RunRegistry(server_state(request).access.owner(who, who.user).catalog)
    runs = []
    for r in reversed(registry.list()):
        live = r.status in ("queued", "running")
        runs.append(
            {
                "id": r.id,
                "kind": r.kind,
                "name": r.name,
                "status": r.status,
                "style": style(r.status),
                "exit": "-" if r.exit_code is None else r.exit_code,
                "datastores": ", ".join(a.ref for a in r.datastores if a.detached_at is None)
                or "-",
                "executor": r.executor + (f" ({r.job_id})" if r.job_id else ""),
                "host": r.host,
                "started": when(r.started_at or r.created_at),
                "url": r.detail("url") if live and r.kind == "session" else "",
                "live": live,
            }
        )
    return page(request, who, "runs.html", runs=runs)
