"""Value types returned by the public API (plain frozen dataclasses, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

UPLOADING = "uploading"
PROCESSING = "processing"
OPTIMIZING = "optimizing"
SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"  # stopped by Ctrl-C / SIGTERM / hang-up; the same create resumes it
UNFINISHED = (UPLOADING, PROCESSING, OPTIMIZING, INTERRUPTED)


@dataclass(frozen=True)
class VersionInfo:
    """One version of a datastore."""

    datastore: str
    number: int
    status: str
    reason: str | None
    source: str
    files: int
    size: int
    stored_bytes: int
    created_at: datetime
    finished_at: datetime | None
    manifest_id: str
    progress_done: int | None = None  # while processing: bytes downloaded so far
    progress_total: int | None = None  # ... out of this many (None: unknown)
    host: str = ""  # the machine whose create made (or last resumed) it
    pid: int = 0  # ... and its process
    lease_expires_at: datetime | None = None  # while unfinished: that create holds it until then

    @property
    def ref(self) -> str:
        return f"{self.datastore}:{self.number}"


@dataclass(frozen=True)
class Lease:
    """Who is creating a version: a process on a host, renewing its hold every so often; a
    hold not renewed for ``seconds`` has lapsed and the version may be resumed elsewhere."""

    host: str
    pid: int
    seconds: float


@dataclass(frozen=True)
class DatastoreInfo:
    """A datastore with a summary of its versions."""

    name: str
    created_at: datetime
    versions: int
    latest: VersionInfo | None


@dataclass(frozen=True)
class FileInfo:
    """A path inside a version."""

    path: str
    kind: str
    size: int
    mode: int
    mtime_ns: int
    target: str | None = None


@dataclass(frozen=True)
class UserInfo:
    """A team-mode account (a user or a team)."""

    name: str
    kind: str  # "user" or "team"
    disabled: bool
    created_at: datetime
    teams: tuple[str, ...] = ()  # a user's teams; a team's members


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as it may be shown again: its id and dates, never the key."""

    id: str
    user: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a user, the teams they belong to, the key they used;
    ``run_id``: a run key, which only reads what that run attaches, while it runs."""

    user: str
    teams: tuple[str, ...]
    key_id: str
    run_id: int | None = None


QUEUED = "queued"
RUNNING = "running"
STOPPED = "stopped"
LOST = "lost"  # its supervising process went away: the outcome is unknown
RUN_LIVE = (QUEUED, RUNNING)


@dataclass(frozen=True)
class Attachment:
    """A datastore version attached to a run or session, and where the run sees it."""

    datastore: str  # as the run's user names it: ``cats`` or ``vision/pets``
    version: int
    path: str = ""  # where it is mounted inside the run
    attached_at: datetime | None = None
    detached_at: datetime | None = None  # a session's datastore detached while it ran

    @property
    def ref(self) -> str:
        return f"{self.datastore}:{self.version}"


@dataclass(frozen=True)
class RunInfo:
    """A run (a script) or a session (JupyterLab) with its attached datastore versions."""

    id: int
    kind: str  # "run" or "session"
    name: str
    user: str
    command: tuple[str, ...]
    executor: str  # "local" or "slurm"
    host: str  # the machine whose grid supervises it
    pid: int  # ... and the supervising process
    status: str  # queued, running, succeeded, failed, stopped, lost
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    datastores: tuple[Attachment, ...]
    log_path: str = ""
    job_id: str = ""  # the SLURM job
    details: tuple[tuple[str, str], ...] = ()  # a session's url, token, root, port
    lease_expires_at: datetime | None = None

    def detail(self, key: str) -> str:
        """One of ``details`` ('' if absent)."""
        return dict(self.details).get(key, "")


JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class JobInfo:
    """Work a server handed to its workers (an import, a check, gc, a scheduled re-import)."""

    id: int
    kind: str
    owner: str
    payload: dict[str, Any]
    state: str  # one of JOB_STATES
    attempts: int  # claims so far (a worker that died leaves its claim counted)
    worker: str  # who holds (or last held) it
    lease_until: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any]
    error: str


@dataclass(frozen=True)
class ScheduleInfo:
    """A re-import a server keeps: ``source`` into ``name`` every ``every_seconds``."""

    name: str
    owner: str
    source: str
    every_seconds: int
    keep_last: int | None
    next_at: datetime
    created_at: datetime
    last_job: JobInfo | None  # the latest run's job, if any
