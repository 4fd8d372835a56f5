"""The web pages: sign in with a username and API key, and the datastores one can see, with
statuses that update live (htmx, served from here: the pages load nothing from elsewhere).

The pages read what the API serves, through the same code: the list is the one
``GET /v1/datastores`` answers. Signing in makes a session key (``grid.server.auth``) kept in an
``HttpOnly``, ``SameSite=Strict`` cookie; the sign-in form itself is accepted only from this
server's own pages (its ``Origin``).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from grid.catalog.accounts import refused_key
from grid.errors import ForbiddenError, GridError, NotFoundError, UnauthorizedError
from grid.records import FAILED, Principal
from grid.server.auth import COOKIE, principal
from grid.server.datastores_api import Owned, list_datastores
from grid.server.state import server_state
from grid.server.web_common import (
    HERE,
    page,
    progress,
    render,
    signed_in,
    size,
    style,
    to_sign_in,
    when,
)

router = APIRouter(include_in_schema=False)
_STATIC = {
    "htmx.min.js": "text/javascript",
    "grid.css": "text/css",
    "create.js": "text/javascript",
}
SESSION_SECONDS = 12 * 3600


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
                "size": size(v.size) if v else "-",
                "status": status,
                "progress": progress(v),
                "style": style(status),
                "reason": v.reason if v and v.status == FAILED else "",
                "created": when(v.created_at if v else d.created_at),
            }
        )
    return rows


@router.get("/ui/static/{name}")
def static(name: str) -> FileResponse:
    """The pages' script and style (nothing else is served from here)."""
    if name not in _STATIC:
        raise NotFoundError(f"no file {name!r}", name=name)
    return FileResponse(HERE / "static" / name, media_type=_STATIC[name])


@router.get("/ui/sign-in")
def sign_inrender(request: Request) -> Response:
    if signed_in(request) is not None:
        return RedirectResponse("/ui/", status_code=303)
    return render("sign_in.html", username="", error="")


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
        return render("sign_in.html", 401, username=username, error="Wrong username or API key.")
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
    who = signed_in(request)
    if who is None:
        return to_sign_in()
    return page(request, who, "datastores.html", rows=_rows(list_datastores(request, who), q), q=q)


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
                "progress": progress(v),
                "style": style(v.status),
                "reason": v.reason or "",
                "files": f"{v.files:,}",
                "size": size(v.size),
                "stored": size(v.stored_bytes),
                "source": v.source,
                "created": when(v.created_at),
                "used_by": runs.users_of(view.id, name, v.number),
            }
        )
    shown = name if owner == who.user else f"{owner}/{name}"
    return {"rows": rows, "owner": owner, "name": name, "shown": shown}


@router.get("/ui/datastores/{owner}/{name}")
def datastore_page(request: Request, owner: str, name: str) -> Response:
    """A datastore's versions, newest first, with the runs that used each; delete one."""
    who = signed_in(request)
    if who is None:
        return to_sign_in()
    return page(request, who, "datastore.html", **_versions(request, who, owner, name))


@router.get("/ui/datastores/{owner}/{name}/versions")
def versions_table(request: Request, owner: str, name: str) -> Response:
    """The versions table alone (refreshed live)."""
    who = signed_in(request)
    if who is None:
        return to_sign_in(fragment=True)
    return render("versions_table.html", **_versions(request, who, owner, name))


@router.get("/ui/datastores")
def datastores_table(request: Request, q: str = "") -> Response:
    """The table alone (the page refreshes it as statuses change)."""
    who = signed_in(request)
    if who is None:
        return to_sign_in(fragment=True)
    return render("datastores_table.html", rows=_rows(list_datastores(request, who), q), q=q)
