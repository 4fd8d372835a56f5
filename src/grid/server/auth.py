"""The caller of a request, from its API key.

A request carries ``Authorization: Bearer grid_...`` (the CLI, scripts), or the session
cookie of a browser signed in to the web pages: that cookie holds a key made at sign-in (12 h,
revoked at sign-out), ``HttpOnly`` and ``SameSite=Strict``, and a request that changes
something must also carry ``X-CSRF-Token``, which only the pages know. Either way the key is
looked up on every request, so expiry and revocation act at once on every server.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from grid.catalog import Accounts
from grid.errors import ForbiddenError
from grid.records import Principal
from grid.server.run_scope import check_route
from grid.server.state import server_state

COOKIE = "grid_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = ("GET", "HEAD", "OPTIONS")


def csrf_token(request: Request, key_id: str) -> str:
    """The CSRF token of the browser session whose key is ``key_id``."""
    secret = server_state(request).secret
    return hmac.new(secret.encode(), f"csrf:{key_id}".encode(), hashlib.sha256).hexdigest()[:40]


def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer KEY`` or a signed-in browser's cookie
    (UnauthorizedError otherwise; a run key, too, on a route it may not use).

    Raises:
        ForbiddenError: a browser's request that changes something without the CSRF token.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    accounts: Accounts = server_state(request).accounts
    cookie = request.cookies.get(COOKIE) if not token else None
    caller = accounts.authenticate(
        cookie or (token.strip() if scheme.lower() == "bearer" else None)
    )
    if cookie and request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent, csrf_token(request, caller.key_id)):
            raise ForbiddenError("this page's request lacks its CSRF token: reload the page")
    check_route(request, caller)
    request.state.user = caller.user  # for the request's log line
    return caller


Caller = Annotated[Principal, Depends(principal)]
