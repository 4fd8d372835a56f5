"""The data plane: URLs to an owner's objects, the packs an owner already has, and (for a
server whose storage is a local folder) the objects themselves behind signed URLs.

A member of an owner gets GET and HEAD URLs to the owner's packs and manifests, and PUT URLs
that only create (``If-None-Match: *``), never for a pack the owner has or one being checked:
nobody replaces bytes through them. What is uploaded counts only once a commit has checked
it (``grid.service.publish``). Keys are one owner's store keys (``packs/ab/ID``,
``manifests/ab/ID``).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import tempfile
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from grid.errors import ConflictError, UploadRefusedError, UsageError
from grid.objects import ObjectStore
from grid.reports import GcReport
from grid.server.access import Access
from grid.server.auth import Caller
from grid.server.problems import MEDIA_TYPE, body_of
from grid.server.run_scope import check_objects
from grid.server.state import server_state
from grid.service.publish import OwnerArea, check_uploaded

router = APIRouter(prefix="/v1")
_KEY = re.compile(r"^(packs|manifests)/[0-9a-f]{2}/[0-9a-f]{32}$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


class UrlsIn(BaseModel):
    method: Literal["GET", "HEAD", "PUT"]
    keys: list[str] = Field(min_length=1, max_length=1000)


class UrlsOut(BaseModel):
    """``urls[key]``: absolute, or relative to the server."""

    urls: dict[str, str]


class PackOut(BaseModel):
    seq: int
    pack_id: str
    size: int
    trailer: str  # base64


class GoneOut(BaseModel):
    seq: int
    pack_id: str


class PacksOut(BaseModel):
    packs: list[PackOut]
    gone: list[GoneOut] = []  # packs gc dropped after ``gone_after``: forget them


def _area(request: Request, caller: Caller, owner: str) -> OwnerArea:
    access: Access = server_state(request).access
    view = access.owner(caller, owner)
    return OwnerArea(server_state(request).objects, view.name, view.id)


@router.post("/owners/{owner}/objects")
def object_urls(request: Request, caller: Caller, owner: str, body: UrlsIn) -> UrlsOut:
    """URLs to move objects of ``owner`` directly to or from the store."""
    check_objects(request, caller, owner, body.method, body.keys)
    area, state = _area(request, caller, owner), server_state(request)
    for key in body.keys:
        if not _KEY.match(key):
            raise UsageError(
                f"invalid object key {key[:80]!r}", rule="packs/xx/ID or manifests/xx/ID"
            )
    if body.method == "PUT":
        pack_ids = [k.rsplit("/", 1)[1] for k in body.keys if k.startswith("packs/")]
        taken = state.packs.registered(area.owner_id, pack_ids)
        if taken:
            raise ConflictError(
                f"pack {sorted(taken)[0]} is stored already: it is not uploaded again"
            )
    return UrlsOut(urls={k: state.urls.url(area.key(k), body.method) for k in body.keys})


@router.get("/owners/{owner}/packs")
def packs_since(
    request: Request,
    caller: Caller,
    owner: str,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    gone_after: Annotated[int | None, Query(ge=0)] = None,
) -> PacksOut:
    """The owner's checked packs after cursor ``after``, with their trailers: which blobs the
    owner already stores (a client uploads only the others); with ``gone_after``, also the
    packs gc dropped after that cursor, which a client must forget."""
    area = _area(request, caller, owner)
    registry = server_state(request).packs
    rows = registry.since(area.owner_id, after, limit)
    gone = [] if gone_after is None else registry.gone_since(area.owner_id, gone_after, limit)
    return PacksOut(
        packs=[
            PackOut(seq=seq, pack_id=pid, size=size, trailer=base64.b64encode(t).decode())
            for seq, pid, size, t in rows
        ],
        gone=[GoneOut(seq=seq, pack_id=pid) for seq, pid in gone],
    )


class CheckIn(BaseModel):
    pack_ids: list[str] = Field(min_length=1, max_length=100)


class Checked(BaseModel):
    checked: int


@router.post("/owners/{owner}/packs/check")
def check_packs(request: Request, caller: Caller, owner: str, body: CheckIn) -> Checked:
    """Check packs a client has just uploaded (as a commit would), so that its commit finds
    them checked: the check overlaps the rest of the upload."""
    area = _area(request, caller, owner)
    try:
        check_uploaded(area, server_state(request).packs, body.pack_ids)
    except UploadRefusedError as exc:
        raise UploadRefusedError(f"upload refused: {exc.message}", **exc.attrs) from exc
    return Checked(checked=len(body.pack_ids))


class GcIn(BaseModel):
    dry_run: bool = False
    grace: float = Field(default=24 * 3600.0, ge=0)


@router.post("/owners/{owner}/gc")
def collect_garbage(request: Request, caller: Caller, owner: str, body: GcIn) -> GcReport:
    """Delete the owner's packs no version needs: a ``gc`` job a worker runs
    (``grid.service.server_gc``), answered with its report once it ended."""
    from grid.server.waiting import run_job

    state = server_state(request)
    view = state.access.owner(caller, owner)
    payload = {"grace": body.grace, "dry_run": body.dry_run}
    result = run_job(state, view.id, "gc", payload, f"gc of {owner}")
    return GcReport(**result["report"])


@router.get("/owners/{owner}/usage")
def storage_usage(request: Request, caller: Caller, owner: str) -> dict[str, object]:
    """Where the owner's stored bytes go (``grid.service.usage``): per succeeded version and
    datastore, what it added and what it alone uses; the owner's total."""
    from grid.service.usage import owner_usage

    state = server_state(request)
    view = state.access.owner(caller, owner)
    area = OwnerArea(state.objects, view.name, view.id)
    return dataclasses.asdict(owner_usage(area, view.catalog, state.scratch))


@router.api_route("/objects/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def read_object(
    request: Request, token: str, range_: Annotated[str | None, Header(alias="range")] = None
) -> Response:
    """An object behind a signed URL (local-folder storage only)."""
    key = server_state(request).urls.check(token, request.method)
    objects = server_state(request).objects
    size = objects.size(key)
    if request.method == "HEAD":
        return Response(headers={"content-length": str(size)})
    m = _RANGE.match(range_ or "")
    if m is None:
        return Response(objects.get(key), media_type="application/octet-stream")
    start, end = int(m.group(1)), min(int(m.group(2)), size - 1)
    if start >= size or end < start:
        return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
    return Response(
        objects.get_range(key, start, end - start + 1),
        status_code=206,
        media_type="application/octet-stream",
        headers={"content-range": f"bytes {start}-{end}/{size}"},
    )


@router.put("/objects/{token}", include_in_schema=False)
async def write_object(request: Request, token: str) -> Response:
    """Store an object behind a signed URL (local-folder storage only)."""
    state = server_state(request)
    key = state.urls.check(token, "PUT")
    os.makedirs(state.scratch, exist_ok=True)
    fd, spool = tempfile.mkstemp(dir=state.scratch, prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as f:  # spooled: a manifest may be larger than memory
            async for chunk in request.stream():
                f.write(chunk)
        created = await run_in_threadpool(_create, state.objects, key, spool)
    finally:
        os.unlink(spool)
    if created:
        return Response(status_code=200)
    body = body_of(ConflictError(f"object {key} exists: an upload URL never replaces it"))
    body["status"] = 412  # as S3 answers a PUT with If-None-Match: * on an existing key
    return JSONResponse(body, status_code=412, media_type=MEDIA_TYPE)


def _create(objects: ObjectStore, key: str, path: str) -> bool:
    """Store the file at ``path`` as ``key`` unless that exists (as S3's ``If-None-Match``)."""
    with open(path, "rb") as f:
        return objects.put_if_absent(key, f.read())
