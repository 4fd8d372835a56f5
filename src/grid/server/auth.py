"""The caller of a request, from its API key.

Every request but ``/v1/health`` carries ``Authorization: Bearer grid_...``; the key is looked
up on every request, so expiry and revocation act at once on every server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from grid.catalog import Accounts
from grid.records import Principal
from grid.server.run_scope import check_route
from grid.server.state import server_state


def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer KEY`` (UnauthorizedError otherwise; a run
    key, too, on a route it may not use)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    accounts: Accounts = server_state(request).accounts
    caller = accounts.authenticate(token.strip() if scheme.lower() == "bearer" else None)
    check_route(request, caller)
    return caller


Caller = Annotated[Principal, Depends(principal)]
