"""Uploads in parts (the web page's): ``POST .../uploads`` starts one (or finds the one begun
with the same fingerprint, to resume it), ``PUT .../uploads/ID/parts/N`` stores a part,
``GET .../uploads/ID`` tells which parts are stored, and ``POST .../uploads/ID/finish``
imports the whole as the next version, its progress streamed as the imports route streams it
(``grid.service.staged_upload`` says how).

Where the store's CORS rules let the page's origin PUT (an S3 bucket set up for it), the
start also gives a presigned URL per missing part: the bytes then go straight to the store,
as the CLI's packs do, and ``POST .../parts/N/stored`` has the server check and count each.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from grid.errors import GridError, UsageError
from grid.objects.prefixed import PrefixedStore
from grid.server.auth import Caller
from grid.server.imports_api import stream_import
from grid.server.operations import RECEIVED
from grid.server.state import ServerState, server_state
from grid.server.storage import URL_SECONDS
from grid.service import create
from grid.service.names import validate_name
from grid.service.staged_upload import PART_SIZE, StagedUploads, Upload

router = APIRouter(prefix="/v1/datastores")


class UploadIn(BaseModel):
    """What will be sent: a tar stream of ``size`` bytes holding ``files`` files;
    ``fingerprint`` names that content (the same for a retry), ``label`` describes it."""

    size: int = Field(gt=0)
    files: int = Field(gt=0)
    fingerprint: str = Field(min_length=8, max_length=200)
    label: str = Field(default="", max_length=200)


class UploadOut(BaseModel):
    """An upload: its id, the version it fills, its parts and those already stored."""

    id: str
    version: int
    size: int
    part_size: int
    parts: int
    received: list[int]
    finishing: bool
    urls: dict[int, str] = Field(
        default_factory=dict,
        description="where the page PUTs each missing part straight to the store (when the "
        "store's CORS rules let the page's origin do so; else to the parts route)",
    )


def _uploads(state: ServerState, caller: Caller, owner: str, name: str) -> StagedUploads:
    view = state.access.owner(caller, owner, name)
    return StagedUploads(view.catalog, PrefixedStore(state.objects, view.name), view.name)


def _out(uploads: StagedUploads, upload: Upload, direct: bool = False) -> UploadOut:
    received = uploads.received(upload)
    urls: dict[int, str] = {}
    if direct:
        for n in sorted(set(range(upload.parts)) - set(received)):
            url = uploads.part_url(upload, n, URL_SECONDS)
            if url is None:
                break
            urls[n] = url
    return UploadOut(
        id=upload.id,
        version=upload.number,
        size=upload.size,
        part_size=PART_SIZE,
        parts=upload.parts,
        received=received,
        finishing=upload.finishing,
        urls=urls,
    )


def _direct(request: Request, state: ServerState) -> bool:
    """Whether the page asking may send parts straight to the store (its CORS rules)."""
    origin = request.headers.get("origin") or str(request.base_url).rstrip("/")
    return state.objects.browser_may(origin, "PUT")


@router.post("/{owner}/{name}/uploads", status_code=201)
def start_upload(
    request: Request, caller: Caller, owner: str, name: str, body: UploadIn
) -> UploadOut:
    """Start an upload for the next version of ``owner/name`` (or find the one begun)."""
    validate_name(name)
    state = server_state(request)
    uploads = _uploads(state, caller, owner, name)
    upload = uploads.start(name, body.size, body.files, body.fingerprint, body.label)
    return _out(uploads, upload, _direct(request, state))


@router.get("/{owner}/{name}/uploads/{upload_id}")
def get_upload(
    request: Request, caller: Caller, owner: str, name: str, upload_id: str
) -> UploadOut:
    """An upload and the parts it has."""
    uploads = _uploads(server_state(request), caller, owner, name)
    return _out(uploads, uploads.get(upload_id))


@router.put("/{owner}/{name}/uploads/{upload_id}/parts/{part}", status_code=204)
async def put_part(
    request: Request, caller: Caller, owner: str, name: str, upload_id: str, part: int
) -> Response:
    """Store part ``part`` (its bytes are the body, at most the part size)."""
    uploads = _uploads(server_state(request), caller, owner, name)
    upload = await run_in_threadpool(uploads.get, upload_id)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > PART_SIZE:
            raise UsageError(
                f"a part is at most {PART_SIZE} bytes",
                rule="send the parts the upload's start told",
            )
    done = await run_in_threadpool(uploads.put_part, upload, part, bytes(data))
    RECEIVED.labels("upload part").inc(len(data))
    return Response(status_code=204, headers={"Upload-Offset": str(done)})


@router.post("/{owner}/{name}/uploads/{upload_id}/parts/{part}/stored", status_code=204)
def part_stored(
    request: Request, caller: Caller, owner: str, name: str, upload_id: str, part: int
) -> Response:
    """Part ``part`` was PUT straight to the store: check it, and count it."""
    uploads = _uploads(server_state(request), caller, owner, name)
    upload = uploads.get(upload_id)
    done = uploads.stored(upload, part)
    RECEIVED.labels("upload part, straight to the store").inc(upload.part_length(part))
    return Response(status_code=204, headers={"Upload-Offset": str(done)})


@router.post("/{owner}/{name}/uploads/{upload_id}/finish")
def finish_upload(
    request: Request, caller: Caller, owner: str, name: str, upload_id: str
) -> StreamingResponse:
    """Store the upload as its version: progress as JSON lines, then the version (or the
    error)."""
    state = server_state(request)
    view = state.access.owner(caller, owner, name)
    uploads = StagedUploads(view.catalog, PrefixedStore(state.objects, view.name), view.name)
    upload = uploads.get(upload_id)
    staged = uploads.finish(upload)

    def forget() -> None:
        with contextlib.suppress(GridError):  # the version is made: left parts cost space only
            uploads.remove(upload)

    options = create.SourceOptions(limits=state.limits, staged=staged)
    return stream_import(state, view, name, upload.source, options, on_success=forget)
