"""The run endpoints: a caller's runs and sessions, and who used a version (lineage).

A run is the caller's own; it may attach any succeeded version the caller can read (their
own datastores and their teams'). Others' runs are answered as if they did not exist, except
in a version's lineage, which everyone who can read the version sees (id, name, user,
status: never a session's token).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from grid.catalog.runs import RunRegistry, Use
from grid.errors import ConflictError, UsageError
from grid.records import Principal, RunInfo
from grid.server.access import Access
from grid.server.auth import Caller
from grid.server.state import server_state
from grid.service.names import split_owner

router = APIRouter()
STATUSES = ("queued", "running", "succeeded", "failed", "stopped", "lost")
KINDS = ("run", "session")


class Attach(BaseModel):
    """A version to attach, named as the caller names it, and where the run mounts it."""

    datastore: str = Field(max_length=160)
    version: int = Field(ge=1, lt=2**63)
    path: str = Field(default="", max_length=4096)


class NewRun(BaseModel):
    kind: str = Field(pattern="^(run|session)$")
    name: str = Field(default="", max_length=255)
    command: list[str] = Field(max_length=4096)
    executor: str = Field(pattern="^(local|slurm)$")
    host: str = Field(max_length=255)
    pid: int = Field(ge=0, lt=2**31)
    log_path: str = Field(default="", max_length=4096)
    lease_seconds: float = Field(default=60.0, ge=1, le=86400)
    details: dict[str, str] = Field(default_factory=dict, max_length=32)
    datastores: list[Attach] = Field(default_factory=list, max_length=256)


class RunChange(BaseModel):
    status: str | None = None
    exit_code: int | None = Field(default=None, ge=-(2**31), lt=2**31)
    pid: int | None = Field(default=None, ge=0, lt=2**31)
    host: str | None = Field(default=None, max_length=255)
    job_id: str | None = Field(default=None, max_length=64)
    details: dict[str, str] | None = Field(default=None, max_length=32)
    lease_seconds: float | None = Field(default=None, ge=1, le=86400)


class KeyRequest(BaseModel):
    expires_in: float = Field(default=86400.0, ge=60, le=7 * 86400)


class RunKey(BaseModel):
    """A run key, shown this once: it reads the run's versions while the run lives."""

    key: str
    id: str
    expires_at: datetime | None


class Detach(BaseModel):
    datastore: str = Field(max_length=160)
    version: int = Field(ge=1, lt=2**63)


def _access(request: Request) -> Access:
    access: Access = server_state(request).access
    return access


def _registry(request: Request, caller: Principal) -> RunRegistry:
    return RunRegistry(_access(request).owner(caller, caller.user).catalog)


def _uses(request: Request, caller: Principal, items: list[Attach]) -> list[Use]:
    out = []
    for a in items:
        owner, plain = split_owner(a.datastore)
        view = _access(request).owner(caller, owner or caller.user, plain)
        out.append(Use(view.id, plain, a.version, a.datastore, a.path))
    return out


@router.post("/v1/runs", status_code=201)
def start_run(request: Request, caller: Caller, body: NewRun) -> RunInfo:
    """Record a run (queued) holding the versions it attaches."""
    return _registry(request, caller).start(
        kind=body.kind,
        name=body.name,
        command=body.command,
        executor=body.executor,
        host=body.host,
        pid=body.pid,
        log_path=body.log_path,
        lease_seconds=body.lease_seconds,
        uses=_uses(request, caller, body.datastores),
        details=body.details,
    )


@router.get("/v1/runs")
def list_runs(
    request: Request, caller: Caller, kind: Annotated[str | None, Query()] = None
) -> builtins.list[RunInfo]:
    """The caller's runs (or sessions), oldest first."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}", rule="kind is run or session")
    return _registry(request, caller).list(kind)


@router.get("/v1/runs/{run_id}")
def get_run(request: Request, caller: Caller, run_id: int) -> RunInfo:
    """One of the caller's runs."""
    return _registry(request, caller).get(run_id)


@router.patch("/v1/runs/{run_id}")
def change_run(request: Request, caller: Caller, run_id: int, body: RunChange) -> RunInfo:
    """Record a run's progress (status, exit code, SLURM job, ...) and renew its lease."""
    if body.status is not None and body.status not in STATUSES:
        raise UsageError(f"unknown status {body.status!r}", rule="one of " + ", ".join(STATUSES))
    changes = body.model_dump(exclude_none=True, exclude={"lease_seconds"})
    return _registry(request, caller).update(run_id, body.lease_seconds, **changes)


@router.post("/v1/runs/{run_id}/attach")
def attach(request: Request, caller: Caller, run_id: int, body: list[Attach]) -> RunInfo:
    """Attach more versions to a live run or session."""
    registry = _registry(request, caller)
    registry.get(run_id)  # someone else's run: missing, before a word about the datastores
    return registry.attach(run_id, _uses(request, caller, body))


@router.post("/v1/runs/{run_id}/detach")
def detach(request: Request, caller: Caller, run_id: int, body: Detach) -> RunInfo:
    """Let go of an attached version (the lineage keeps it)."""
    return _registry(request, caller).detach(run_id, body.datastore, body.version)


@router.post("/v1/runs/{run_id}/key", status_code=201)
def run_key(request: Request, caller: Caller, run_id: int, body: KeyRequest) -> RunKey:
    """A key for a job of one of the caller's live runs (a SLURM job on a compute node): it
    reads the versions the run attaches while the run lives, and nothing else."""
    run = _registry(request, caller).get(run_id)
    if run.status not in ("queued", "running"):
        raise ConflictError(f"{run.kind} {run.id} ({run.name}) is {run.status}")
    key, info = server_state(request).accounts.create_key(caller.user, body.expires_in, run.id)
    return RunKey(key=key, id=info.id, expires_at=info.expires_at)


@router.get("/v1/datastores/{owner}/{name}/versions/{number}/runs")
def version_runs(
    request: Request, caller: Caller, owner: str, name: str, number: int
) -> builtins.list[RunInfo]:
    """The runs and sessions, of anyone, that attached a version the caller can read."""
    view = _access(request).owner(caller, owner, name)
    view.catalog.version(name, number)
    return _registry(request, caller).users_of(view.id, name, number)
