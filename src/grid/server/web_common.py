"""What every web page shares: rendering a template, the caller signed in by cookie, and how
sizes, times and statuses are shown."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from grid.errors import ForbiddenError, UnauthorizedError
from grid.records import FAILED, SUCCEEDED, Principal, VersionInfo
from grid.server.auth import csrf_token, principal

HERE = Path(__file__).parent
_PAGES = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)


def render(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` rendered with ``values`` (autoescaped)."""
    return HTMLResponse(_PAGES.get_template(template).render(**values), status_code=status)


def page(request: Request, who: Principal, template: str, **values: Any) -> HTMLResponse:
    """A whole page for ``who``: their name and the CSRF token its requests carry."""
    return render(template, user=who.user, csrf=csrf_token(request, who.key_id), **values)


def size(n: float) -> str:
    """Bytes as people read them (decimal units, as the CLI shows them)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def style(status: str) -> str:
    """The CSS class suffix of a status: succeeded, failed, or other (still moving)."""
    return {SUCCEEDED: "succeeded", FAILED: "failed"}.get(status, "other")


def progress(v: VersionInfo | None) -> str:
    """How far an unfinished version has come (``45% of 1.2 GB``), or nothing."""
    if v is None or v.status in (SUCCEEDED, FAILED) or v.progress_done is None:
        return ""
    if v.progress_total:
        share = min(100, v.progress_done * 100 // v.progress_total)
        return f"{share}% of {size(v.progress_total)}"
    return size(v.progress_done)


def when(t: datetime | None) -> str:
    """A time to the minute, or ``-``."""
    return t.strftime("%Y-%m-%d %H:%M") if t else "-"


def signed_in(request: Request) -> Principal | None:
    """The caller of a page, or None when signed out."""
    try:
        return principal(request)
    except (UnauthorizedError, ForbiddenError):
        return None


def to_sign_in(fragment: bool = False) -> Response:
    """Where a signed-out browser goes: a page redirects to the sign-in page; a fragment
    (what htmx fetches into a page) is empty and tells the page to go there."""
    if fragment:
        return Response(status_code=200, headers={"HX-Redirect": "/ui/sign-in"})
    return RedirectResponse("/ui/sign-in", status_code=303)
