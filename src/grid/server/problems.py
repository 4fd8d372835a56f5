"""Errors as problem+json (RFC 9457), from one table over the error tree.

The body carries the error's stable ``code``, message and attributes, so a remote client
rebuilds the same exception (``grid.errors.rebuild``).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from grid import errors as e

# Most specific first; anything else a GridError is 500.
STATUS: list[tuple[type[e.GridError], int]] = [
    (e.UsageError, 400),
    (e.UnauthorizedError, 401),
    (e.ForbiddenError, 403),
    (e.NotFoundError, 404),
    (e.VersionNotReadyError, 409),
    (e.ConflictError, 409),
    (e.SourceError, 422),
    (e.UploadRefusedError, 422),
    (e.ReferenceChangedError, 409),
    (e.IntegrityError, 500),
    (e.StorageClaimedError, 503),
    (e.StorageError, 503),
]
MEDIA_TYPE = "application/problem+json"


def status_of(exc: e.GridError) -> int:
    """The HTTP status of ``exc``."""
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


def _jsonable(value: object) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def body_of(exc: e.GridError) -> dict[str, Any]:
    """The problem+json body of ``exc``."""
    status = status_of(exc)
    return {
        "type": f"https://grid.invalid/errors/{exc.code}",
        "title": type(exc).__name__,
        "status": status,
        "detail": exc.message,
        "code": exc.code,
        "attrs": {k: _jsonable(v) for k, v in exc.attrs.items()},
    }


def problem(exc: e.GridError) -> JSONResponse:
    """``exc`` as a problem+json response."""
    status = status_of(exc)
    body = body_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)
