"""``POST /v1/datastores/{owner}/{name}/imports``: the server makes a version from an archive
URL or an S3 prefix itself (``grid.service.server_import``).

The import is a job (``grid.server.worker``): a worker runs it (a thread of every server, or
``grid worker`` processes), and the answer follows it, streaming progress as JSON lines while
it runs and ending with ``{"version": ...}`` or ``{"error": problem}``. It runs on if the
client goes away (its version's status and progress show in ``grid datastore``), and if its
worker dies, another takes it over once its lease lapses and finishes the same version.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from grid.catalog.jobs import ENDED, JobQueue
from grid.errors import GridError, UsageError
from grid.records import Principal
from grid.reports import CreateProgress
from grid.server.access import OwnerView
from grid.server.auth import Caller
from grid.server.problems import body_of
from grid.server.state import ServerState, server_state
from grid.server.worker import WAKE
from grid.service import create
from grid.service.names import validate_name
from grid.sources.archive import is_url
from grid.sources.http import check_url

router = APIRouter(prefix="/v1/datastores")
_BEAT = 1.0  # seconds between lines at most: a keep-alive for proxies
_POLL = 0.5  # seconds between looks at a job a worker runs
_NDJSON = "application/x-ndjson"


class ImportIn(BaseModel):
    """What to import and the client's options (limits may only be lowered)."""

    source: str = Field(max_length=4096)
    keep_root: bool = False
    skip_unchanged: bool = False
    endpoint_url: str | None = Field(default=None, max_length=2048)
    max_size: int | None = Field(default=None, ge=1)
    max_files: int | None = Field(default=None, ge=1)
    max_ratio: float | None = Field(default=None, ge=1)


def _limits(server: create.ArchiveLimits, body: ImportIn) -> create.ArchiveLimits:
    def lower(mine: float, theirs: float | None) -> float:
        return mine if theirs is None else min(mine, theirs)

    return create.ArchiveLimits(
        max_bytes=int(lower(server.max_bytes, body.max_size)),
        max_entries=int(lower(server.max_entries, body.max_files)),
        max_ratio=lower(server.max_ratio, body.max_ratio),
    )


@router.post("/{owner}/{name}/imports")
def import_version(
    request: Request, caller: Caller, owner: str, name: str, body: ImportIn
) -> StreamingResponse:
    """Make the next version of ``owner/name`` from an archive URL or ``s3://`` prefix."""
    state = server_state(request)
    view, limits = check_import(state, caller, owner, name, body)
    payload = {
        "name": name,
        "source": body.source,
        "endpoint_url": body.endpoint_url,
        "keep_root": body.keep_root,
        "skip_unchanged": body.skip_unchanged,
        "limits": dataclasses.asdict(limits),
        # the accepting server's rule, which any worker then follows
        "allow_private_urls": state.allow_private_urls,
    }
    job = JobQueue(state.catalog).enqueue(view.id, "import", payload)
    WAKE.set()
    return StreamingResponse(_follow(state, job.id), media_type=_NDJSON)


def check_import(
    state: ServerState, caller: Principal, owner: str, name: str, body: ImportIn
) -> tuple[OwnerView, create.ArchiveLimits]:
    """The owner an import of ``body`` goes to, and its limits; refuse what the server must
    not import (a folder, another bucket, an address inside its network, a bad name)."""
    if not (is_url(body.source) or body.source.startswith("s3://")):
        raise UsageError(
            f"{body.source[:200]!r} is not an archive URL or an s3:// prefix",
            rule="a server imports http(s) archive URLs and s3://bucket/prefix; a client "
            "uploads folders itself",
        )
    validate_name(name)
    _check_source(state, body)
    view = state.access.owner(caller, owner, name)
    return view, _limits(state.limits, body)


def _follow(state: ServerState, job_id: int) -> Iterator[str]:
    """The lines of an import a worker runs: its version's progress, then its end."""
    jobs = JobQueue(state.catalog)
    shown = None
    while True:
        job = jobs.get(job_id)
        if job.state in ENDED:
            last = job.result.get("progress")
            if last is not None and last != shown:
                yield json.dumps({"progress": last}) + "\n"
            if "version" in job.result:
                yield json.dumps({"version": job.result["version"]}, default=str) + "\n"
            else:
                problem = job.result.get("error") or body_of(GridError(job.error or job.state))
                yield json.dumps({"error": problem}) + "\n"
            return
        progress = job.result.get("progress")
        if progress is not None and progress != shown:
            yield json.dumps({"progress": progress}) + "\n"
            shown = progress
        else:
            yield "\n"  # keep-alive for proxies and the client's read timeout
        time.sleep(_POLL)


def stream_import(
    state: ServerState,
    view: OwnerView,
    name: str,
    source: str,
    options: create.SourceOptions,
    skip_unchanged: bool = False,
    on_success: Callable[[], None] | None = None,
) -> StreamingResponse:
    """Import ``source`` as the next version of ``name`` in a thread of its own (it goes on
    if the client goes away), its progress streamed as JSON lines; ``on_success`` runs once
    the version succeeded."""
    feed = _Feed()
    job = _Job(state, view, name, source, options, skip_unchanged, on_success)
    threading.Thread(target=_run, args=(job, feed), name="grid-import", daemon=True).start()
    return StreamingResponse(feed.lines(), media_type="application/x-ndjson")


@dataclasses.dataclass(frozen=True)
class _Job:
    state: ServerState
    view: OwnerView
    name: str
    source: str
    options: create.SourceOptions
    skip_unchanged: bool
    on_success: Callable[[], None] | None


def _check_source(state: ServerState, body: ImportIn) -> None:
    """Refuse what the server must not read for a user: an endpoint inside its network, a
    bucket its operator did not open to imports, and always its own storage's bucket (a user
    would copy other owners' objects out of it)."""
    if body.endpoint_url is not None:
        check_url(body.endpoint_url, state.allow_private_urls)
    if not body.source.startswith("s3://"):
        return
    bucket = body.source[5:].split("/", 1)[0]
    allowed = bucket in state.s3_import_buckets or "*" in state.s3_import_buckets
    if not allowed or bucket == state.storage_bucket:
        raise UsageError(
            f"this server does not read s3://{bucket} for its users",
            rule="the server imports only buckets its operator allows (grid server "
            "--allow-s3-import BUCKET); your machine reads other buckets with your credentials",
            read_here=True,
        )


class _Feed:
    """What an import tells its client: the latest progress (older ones are dropped, so a
    client that went away costs nothing), warnings, and the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: dict[str, object] | None = None
        self._warnings: list[str] = []
        self._end: dict[str, object] | None = None
        self._changed = threading.Event()

    def progress(self, p: CreateProgress) -> None:
        with self._lock:
            self._progress = dataclasses.asdict(p)
        self._changed.set()

    def warn(self, message: str) -> None:
        with self._lock:
            if len(self._warnings) < 1000:
                self._warnings.append(message)
        self._changed.set()

    def end(self, event: dict[str, object]) -> None:
        with self._lock:
            self._end = event
        self._changed.set()

    def lines(self) -> Iterator[str]:
        while True:
            self._changed.wait(_BEAT)
            with self._lock:
                self._changed.clear()
                progress, self._progress = self._progress, None
                warnings, self._warnings = self._warnings, []
                end = self._end
            for w in warnings:
                yield json.dumps({"warning": w}) + "\n"
            if progress is None and not warnings and end is None:
                yield "\n"  # keep-alive for proxies and the client's read timeout
            if progress is not None:
                yield json.dumps({"progress": progress}) + "\n"
            if end is not None:
                yield json.dumps(end, default=str) + "\n"
                return


def _run(job: _Job, feed: _Feed) -> None:
    from grid.server.import_jobs import import_into

    try:
        version = import_into(
            job.state,
            job.view,
            job.name,
            job.source,
            job.options,
            progress=feed.progress,
            warn=feed.warn,
            skip_unchanged=job.skip_unchanged,
        )
        if job.on_success is not None:
            job.on_success()
        feed.end({"version": dataclasses.asdict(version)})
    except GridError as exc:
        feed.end({"error": body_of(exc)})
    except BaseException as exc:  # never lose the stream's end
        feed.end({"error": body_of(GridError(f"internal error: {type(exc).__name__}: {exc}"))})
