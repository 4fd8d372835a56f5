"""The datastore endpoints: the catalog of every owner a caller may use, over HTTP.

A version is created by its client (which holds the lease and uploads the bytes) and finished
by the server: ``commit`` checks what was uploaded (``grid.service.publish``) and is the only
way to ``succeeded``.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from grid.catalog import Catalog
from grid.errors import ConflictError, GridError, NotFoundError, UsageError
from grid.records import (
    FAILED,
    UNFINISHED,
    DatastoreInfo,
    Lease,
    Principal,
    VersionInfo,
)
from grid.server.access import Access, OwnerView
from grid.server.auth import Caller
from grid.server.run_scope import check_version
from grid.server.state import server_state
from grid.service.publish import OwnerArea

router = APIRouter(prefix="/v1/datastores")
_SETTABLE = (*UNFINISHED, FAILED)


class Owned(BaseModel):
    """A datastore with its owner."""

    owner: str
    datastore: DatastoreInfo


class Holder(BaseModel):
    """The create that holds a version: a process on a host, for ``lease_seconds``."""

    host: str = Field(max_length=255)
    pid: int = Field(ge=0, lt=2**31)
    lease_seconds: float = Field(default=60.0, ge=1, le=86400)

    def lease(self) -> Lease:
        return Lease(self.host, self.pid, self.lease_seconds)


class NewVersion(Holder):
    source: str = Field(max_length=4096)
    manifest_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class Takeover(NewVersion):
    """Resume a stopped version: only if it is still held by ``expect_host``/``expect_pid``."""

    expect_host: str = Field(max_length=255)
    expect_pid: int


class Renewed(BaseModel):
    held: bool


class Change(BaseModel):
    """A change of an unfinished version by the create holding it (``host``/``pid``, or
    anyone when left out: marking a stopped create failed)."""

    status: str | None = None
    reason: str | None = Field(default=None, max_length=4096)
    files: int | None = Field(default=None, ge=0)
    size: int | None = Field(default=None, ge=0)
    stored_bytes: int | None = Field(default=None, ge=0)
    progress_done: int | None = Field(default=None, ge=0)
    progress_total: int | None = Field(default=None, ge=0)
    host: str | None = None
    pid: int | None = None


def _access(request: Request) -> Access:
    access: Access = server_state(request).access
    return access


def _view(request: Request, caller: Principal, owner: str, name: str) -> OwnerView:
    return _access(request).owner(caller, owner, name)


@router.get("")
def list_datastores(request: Request, caller: Caller) -> list[Owned]:
    """Every datastore the caller can see: their own, then their teams'."""
    access = _access(request)
    out: list[Owned] = []
    for owner in access.visible(caller):
        with contextlib.suppress(GridError):
            view = access.owner(caller, owner)
            out.extend(Owned(owner=owner, datastore=d) for d in view.catalog.datastores())
    return out


@router.get("/{owner}/{name}/versions")
def versions(request: Request, caller: Caller, owner: str, name: str) -> list[VersionInfo]:
    """All versions of a datastore, oldest first."""
    return _view(request, caller, owner, name).catalog.versions(name)


@router.get("/{owner}/{name}/versions/{number}")
def version(request: Request, caller: Caller, owner: str, name: str, number: int) -> VersionInfo:
    """One version."""
    check_version(request, caller, owner, name, number)  # a run key: before anything else
    return _view(request, caller, owner, name).catalog.version(name, number)


@router.post("/{owner}/{name}/versions", status_code=201)
def new_version(
    request: Request, caller: Caller, owner: str, name: str, body: NewVersion
) -> VersionInfo:
    """Allocate the next version, held by the caller's create; a retried request (its
    first answer was lost) gets the version it made, not a second one."""
    from grid.service.names import validate_name

    view = _access(request).owner(caller, owner, name)
    validate_name(name)
    made = _made_before(view.catalog, name, body)
    return made or view.catalog.new_version(name, body.source, body.manifest_id, body.lease())


def _made_before(catalog: Catalog, name: str, body: NewVersion) -> VersionInfo | None:
    """The version of ``name`` the create of ``body`` already holds, if any."""
    for ref in catalog.manifest_users(body.manifest_id):
        datastore, _, number = ref.rpartition(":")
        if datastore == name:
            with contextlib.suppress(NotFoundError):
                made = catalog.version(name, int(number))
                if _held_by(made, body):
                    return made
    return None


def _held_by(v: VersionInfo, body: NewVersion) -> bool:
    """Whether ``v`` is unfinished and held by the create of ``body`` (each create names a
    fresh manifest id: only a retry of that create's request finds its version so)."""
    return (
        v.status in UNFINISHED
        and v.manifest_id == body.manifest_id
        and (v.host, v.pid) == (body.host, body.pid)
    )


@router.post("/{owner}/{name}/versions/{number}/takeover")
def takeover(
    request: Request, caller: Caller, owner: str, name: str, number: int, body: Takeover
) -> VersionInfo:
    """Resume a version whose create stopped (the client judged it so): only if nobody took
    it over since (a retried request of the create that took it gets it again)."""

    def unchanged(v: VersionInfo) -> bool:
        return v.number == number and (v.host, v.pid) == (body.expect_host, body.expect_pid)

    catalog = _view(request, caller, owner, name).catalog
    with contextlib.suppress(NotFoundError):  # gone: refused below, as when taken over
        current = catalog.version(name, number)
        if _held_by(current, body):
            return current
    taken = catalog.resume_version(name, body.source, body.manifest_id, body.lease(), unchanged)
    if taken is None:
        raise ConflictError(f"{name}:{number} was taken over or finished meanwhile")
    return taken


@router.post("/{owner}/{name}/versions/{number}/renew")
def renew(
    request: Request, caller: Caller, owner: str, name: str, number: int, body: Holder
) -> Renewed:
    """Extend the caller's create's hold on a version."""
    catalog = _view(request, caller, owner, name).catalog
    return Renewed(held=catalog.renew(name, number, body.lease()))


@router.patch("/{owner}/{name}/versions/{number}", status_code=204)
def change(
    request: Request, caller: Caller, owner: str, name: str, number: int, body: Change
) -> Response:
    """Move an unfinished version along (never to succeeded: see commit), or record its
    progress."""
    catalog = _view(request, caller, owner, name).catalog
    current = catalog.version(name, number)
    if current.status not in UNFINISHED:
        raise ConflictError(f"{current.ref} is {current.status}: it can no longer change")
    lease = None if body.host is None else Lease(body.host, body.pid or 0, 0)
    if body.progress_done is not None:
        catalog.set_progress(name, number, body.progress_done, body.progress_total)
    if body.status is not None:
        if body.status not in _SETTABLE:
            raise UsageError(
                f"a version cannot be set {body.status!r} here",
                rule=f"status is one of {', '.join(_SETTABLE)}; succeeded comes from commit",
            )
        catalog.set_status(
            name,
            number,
            body.status,
            reason=body.reason,
            files=body.files,
            size=body.size,
            stored_bytes=body.stored_bytes,
            lease=lease,
        )
    return Response(status_code=204)


@router.post("/{owner}/{name}/versions/{number}/commit")
def commit_version(
    request: Request, caller: Caller, owner: str, name: str, number: int, body: Holder
) -> VersionInfo:
    """Have a worker check what the caller uploaded for the version and make it succeeded,
    or fail it with the reason (nothing of it published): ``grid.server.commits``."""
    from grid.server.commits import commit_version as check_and_commit

    view = _view(request, caller, owner, name)
    return check_and_commit(server_state(request), view, name, number, body.lease())


@router.delete("/{owner}/{name}/versions/{number}")
def delete_version(
    request: Request,
    caller: Caller,
    owner: str,
    name: str,
    number: int,
    discard: Annotated[bool, Query()] = False,
) -> Any:
    """Delete a version (its manifest goes too; packs stay for gc); ``discard``: remove an
    unfinished one that never held data, giving its number back."""
    view = _view(request, caller, owner, name)
    if discard:
        if view.catalog.version(name, number).status not in UNFINISHED:
            raise ConflictError(f"{name}:{number} is finished: delete it instead")
        view.catalog.discard_version(name, number)
        return Response(status_code=204)
    removed = view.catalog.delete_version(name, number)
    _drop_manifests(request, view, [removed])
    return removed


@router.delete("/{owner}/{name}")
def delete_datastore(request: Request, caller: Caller, owner: str, name: str) -> list[VersionInfo]:
    """Delete a datastore with every version."""
    view = _view(request, caller, owner, name)
    removed = view.catalog.delete_datastore(name)
    _drop_manifests(request, view, removed)
    return removed


def _drop_manifests(request: Request, view: OwnerView, removed: list[VersionInfo]) -> None:
    from grid.store.repository import manifest_key

    area = OwnerArea(server_state(request).objects, view.name, view.id)
    for v in removed:
        if view.catalog.manifest_users(v.manifest_id):
            continue  # another version names it too (only a hostile client makes that)
        with contextlib.suppress(GridError):
            area.objects.delete(area.key(manifest_key(v.manifest_id)))
