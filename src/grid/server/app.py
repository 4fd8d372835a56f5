"""The API application: accounts and keys, datastores (``datastores_api``) and the data plane
(``objects_api``).

Every request but ``/v1/health`` and signed object URLs carries ``Authorization: Bearer
grid_...`` (``auth``). Servers keep no state of their own: several of them on one database
and one storage serve the same answers.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from grid import errors as e
from grid.records import ApiKeyInfo
from grid.server import (
    datastores_api,
    imports_api,
    jobs_api,
    objects_api,
    operations,
    runs_api,
    schedules_api,
    uploads_api,
    web,
    web_browse,
    web_runs,
)
from grid.server.auth import Caller
from grid.server.operations import RequestLog, log_to_stderr
from grid.server.problems import problem
from grid.server.state import open_state

API = "/v1"


class KeyOut(BaseModel):
    """An API key as it may be shown again."""

    id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class NewKeyIn(BaseModel):
    """A key to make: ``expires_in`` seconds from now (none: it never expires)."""

    expires_in: float | None = Field(default=None, gt=0)


class NewKeyOut(KeyOut):
    """A new key: the only time ``api_key`` is shown."""

    api_key: str


class WhoAmI(BaseModel):
    """The caller."""

    username: str
    teams: list[str]
    key_id: str


def _key_out(k: ApiKeyInfo) -> dict[str, object]:
    return {
        "id": k.id,
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
    }


def create_app(
    database_url: str,
    storage_url: str,
    *,
    scratch: str | None = None,
    allow_private_urls: bool = False,
    s3_import_buckets: frozenset[str] = frozenset(),
    run_executor: str | None = None,
) -> FastAPI:
    """The application over the catalog at ``database_url`` (migrated on first use) and the
    object store at ``storage_url``. ``scratch``: a local folder for manifests being checked
    and imports; ``allow_private_urls``: archive URLs may point at loopback and private
    addresses (refused by default: the server would fetch them from inside its network);
    ``s3_import_buckets``: buckets it imports from with its own credentials (``*``: any but
    its storage's; users' other S3 sources are read by their own machines); ``run_executor``:
    the web page may start runs and sessions with it (``local`` or ``slurm``; None: it shows
    the command to type). Archive limits come from the server's GRID_ARCHIVE_MAX_* settings."""
    state = open_state(
        database_url,
        storage_url,
        scratch=scratch,
        allow_private_urls=allow_private_urls,
        s3_import_buckets=s3_import_buckets,
        run_executor=run_executor,
    )
    accounts = state.accounts
    app = FastAPI(title="grid", version="1", docs_url=None, redoc_url=None)
    app.state.grid = state
    app.add_middleware(RequestLog)
    for module in (
        operations,
        datastores_api,
        imports_api,
        jobs_api,
        uploads_api,
        objects_api,
        runs_api,
        schedules_api,
        web,
        web_runs,
        web_browse,
    ):
        app.include_router(module.router)

    @app.exception_handler(e.GridError)
    async def _grid_error(_request: Request, exc: e.GridError) -> JSONResponse:
        return problem(exc)

    @app.get(f"{API}/health")
    def health() -> dict[str, str]:
        """Liveness: the server answers (no key needed)."""
        return {"status": "ok"}

    @app.get(f"{API}/whoami")
    def whoami(caller: Caller) -> WhoAmI:
        """The user the key belongs to, and their teams."""
        return WhoAmI(username=caller.user, teams=list(caller.teams), key_id=caller.key_id)

    @app.get(f"{API}/keys")
    def list_keys(caller: Caller) -> list[KeyOut]:
        """The caller's keys (never the keys themselves)."""
        return [KeyOut.model_validate(_key_out(k)) for k in accounts.keys(caller.user)]

    @app.post(f"{API}/keys", status_code=201)
    def create_key(caller: Caller, body: NewKeyIn) -> NewKeyOut:
        """A new key for the caller, shown this once."""
        key, info = accounts.create_key(caller.user, body.expires_in)
        return NewKeyOut.model_validate({**_key_out(info), "api_key": key})

    @app.delete(f"{API}/keys/{{key_id}}", status_code=204)
    def revoke_key(caller: Caller, key_id: str) -> Response:
        """Revoke one of the caller's keys (also the one in use)."""
        accounts.revoke_key(caller.user, key_id)
        return Response(status_code=204)

    return app


def app_from_env() -> FastAPI:
    """The application for a uvicorn worker: ``GRID_DATABASE_URL``, ``GRID_SERVER_STORAGE``
    (its request lines go to stderr)."""
    log_to_stderr()
    app = create_app(
        os.environ["GRID_DATABASE_URL"],
        os.environ["GRID_SERVER_STORAGE"],
        allow_private_urls=os.environ.get("GRID_ALLOW_PRIVATE_URLS") == "1",
        s3_import_buckets=frozenset(
            b for b in os.environ.get("GRID_S3_IMPORT_BUCKETS", "").split(",") if b
        ),
        run_executor=os.environ.get("GRID_RUN_EXECUTOR") or None,
    )
    if os.environ.get("GRID_SERVER_JOBS", "1") != "0":  # else `grid worker` processes do
        from grid.server.worker import Worker

        worker = Worker(app.state.grid)
        stop = threading.Event()
        threading.Thread(target=worker.serve, args=(stop, 2), daemon=True).start()
    return app
