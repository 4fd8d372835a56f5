"""The caller of a request, from its API key.

Every request but ``/v1/health`` carries ``Authorization: Bearer grid_...``; the key is looked
up on every request, so expiry and revocation act at once on every server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from grid.catalog import Accounts
from grid.records import Principal
from grid.server.state import server_state


def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer KEY`` (UnauthorizedError otherwise)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    accounts: Accounts = server_state(request).accounts
    return accounts.authenticate(token.strip() if scheme.lower() == "bearer" else None)


Caller = Annotated[Principal, Depends(principal)]
