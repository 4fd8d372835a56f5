"""The web pages: sign in with a username and API key, and the datastores one can see, with
statuses that update live (htmx, served from here: the pages load nothing from elsewhere).

The pages read what the API serves, through the same code: the list is the one
``GET /v1/datastores`` answers. Signing in makes a session key (``grid.server.auth``) kept in an
``HttpOnly``, ``SameSite=Strict`` cookie; the sign-in form itself is accepted only from this
server's own pages (its ``Origin``).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from grid.catalog.accounts import refused_key
from grid.errors import ForbiddenError, GridError, NotFoundError, UnauthorizedError
from grid.records import FAILED, SUCCEEDED, Principal
from grid.server.auth import COOKIE, csrf_token, principal
from grid.server.datastores_api import Owned, list_datastores
from grid.server.state import server_state

router = APIRouter(include_in_schema=False)
_HERE = Path(__file__).parent
_PAGES = Environment(
    loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html"])
)
_STATIC = {"htmx.min.js": "text/javascript", "grid.css": "text/css"}
SESSION_SECONDS = 12 * 3600


def _page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(_PAGES.get_template(template).render(**values), status_code=status)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _style(status: str) -> str:
    """The CSS class suffix of a status: succeeded, failed, or other (still moving)."""
    return {SUCCEEDED: "succeeded", FAILED: "failed"}.get(status, "other")


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "-"


def _rows(items: list[Owned], q: str) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        d, v = item.datastore, item.datastore.latest
        if q and q.lower() not in d.name.lower():
            continue
        status = v.status if v else "-"
        rows.append(
            {
                "name": d.name,
                "owner": item.owner,
                "latest": v.number if v else None,
                "versions": d.versions,
                "files": f"{v.files:,}" if v else "-",
                "size": _size(v.size) if v else "-",
                "status": status,
                "style": _style(status),
                "reason": v.reason if v and v.status == FAILED else "",
                "created": _when(v.created_at if v else d.created_at),
            }
        )
    return rows


def _signed_in(request: Request) -> Principal | None:
    try:
        return principal(request)
    except (UnauthorizedError, ForbiddenError):
        return None


@router.get("/ui/static/{name}")
def static(name: str) -> FileResponse:
    """The pages' script and style (nothing else is served from here)."""
    if name not in _STATIC:
        raise NotFoundError(f"no file {name!r}", name=name)
    return FileResponse(_HERE / "static" / name, media_type=_STATIC[name])


@router.get("/ui/sign-in")
def sign_in_page(request: Request) -> Response:
    if _signed_in(request) is not None:
        return RedirectResponse("/ui/", status_code=303)
    return _page("sign_in.html", username="", error="")


@router.post("/ui/sign-in")
def sign_in(
    request: Request, username: Annotated[str, Form()], key: Annotated[str, Form()]
) -> Response:
    """Check the key, then keep a session key of its user in the browser's cookie."""
    origin = request.headers.get("origin")
    if origin is not None and origin != str(request.base_url).rstrip("/"):
        raise ForbiddenError("sign in from this server's own page")
    accounts = server_state(request).accounts
    try:
        who = accounts.authenticate(key.strip())
        if who.user != username.strip() or who.run_id is not None:
            raise refused_key()
    except UnauthorizedError:
        return _page("sign_in.html", 401, username=username, error="Wrong username or API key.")
    session_key, _ = accounts.create_key(who.user, SESSION_SECONDS)
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(
        COOKIE,
        session_key,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/ui/sign-out")
def sign_out(request: Request) -> Response:
    """Revoke the session key (a request with the cookie must carry the page's CSRF token)."""
    response = Response(status_code=200, headers={"HX-Redirect": "/ui/sign-in"})
    cookie = request.cookies.get(COOKIE)
    if cookie and "authorization" not in request.headers:
        who = principal(request)  # ForbiddenError without the CSRF token: nothing revoked
        with contextlib.suppress(GridError):
            server_state(request).accounts.revoke_key(who.user, who.key_id)
    response.delete_cookie(COOKIE)
    return response


@router.get("/ui/")
def datastores_page(request: Request, q: str = "") -> Response:
    """The datastores the caller can see; signed out: the sign-in page."""
    who = _signed_in(request)
    if who is None:
        return RedirectResponse("/ui/sign-in", status_code=303)
    rows = _rows(list_datastores(request, who), q)
    csrf = csrf_token(request, who.key_id)
    return _page("datastores.html", user=who.user, csrf=csrf, rows=rows, q=q)


def _versions(request: Request, who: Principal, owner: str, name: str) -> dict[str, Any]:
    from grid.catalog.runs import RunRegistry

    state = server_state(request)
    view = state.access.owner(who, owner, name)
    runs = RunRegistry(state.access.owner(who, who.user).catalog)
    rows = []
    for v in reversed(view.catalog.versions(name)):
        rows.append(
            {
                "number": v.number,
                "status": v.status,
                "style": _style(v.status),
                "reason": v.reason or "",
                "files": f"{v.files:,}",
                "size": _size(v.size),
                "stored": _size(v.stored_bytes),
                "source": v.source,
                "created": _when(v.created_at),
                "used_by": runs.users_of(view.id, name, v.number),
            }
        )
    shown = name if owner == who.user else f"{owner}/{name}"
    return {"rows": rows, "owner": owner, "name": name, "shown": shown}


@router.get("/ui/datastores/{owner}/{name}")
def datastore_page(request: Request, owner: str, name: str) -> Response:
    """A datastore's versions, newest first, with the runs that used each; delete one."""
    who = _signed_in(request)
    if who is None:
        return RedirectResponse("/ui/sign-in", status_code=303)
    values = _versions(request, who, owner, name)
    return _page("datastore.html", user=who.user, csrf=csrf_token(request, who.key_id), **values)


@router.get("/ui/datastores/{owner}/{name}/versions")
def versions_table(request: Request, owner: str, name: str) -> Response:
    """The versions table alone (refreshed live)."""
    who = _signed_in(request)
    if who is None:
        return Response(status_code=200, headers={"HX-Redirect": "/ui/sign-in"})
    return _page("versions_table.html", **_versions(request, who, owner, name))


@router.get("/ui/runs")
def runs_page(request: Request) -> Response:
    """The caller's runs and sessions, newest first (a live session links to its lab)."""
    from grid.catalog.runs import RunRegistry

    who = _signed_in(request)
    if who is None:
        return RedirectResponse("/ui/sign-in", status_code=303)
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
                "style": _style(r.status),
                "exit": "-" if r.exit_code is None else r.exit_code,
                "datastores": ", ".join(a.ref for a in r.datastores if a.detached_at is None)
                or "-",
                "executor": r.executor + (f" ({r.job_id})" if r.job_id else ""),
                "host": r.host,
                "started": _when(r.started_at or r.created_at),
                "url": r.detail("url") if live and r.kind == "session" else "",
            }
        )
    csrf = csrf_token(request, who.key_id)
    return _page("runs.html", user=who.user, csrf=csrf, runs=runs)


@router.get("/ui/datastores")
def datastores_table(request: Request, q: str = "") -> Response:
    """The table alone (the page refreshes it as statuses change)."""
    who = _signed_in(request)
    if who is None:
        return Response(status_code=200, headers={"HX-Redirect": "/ui/sign-in"})
    return _page("datastores_table.html", rows=_rows(list_datastores(request, who), q), q=q)
