"""The jobs table: work a server hands to workers, claimed one at a time under a lease.

A worker claims the oldest queued job, or a running one whose lease lapsed (its worker died),
in one transaction: on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` (workers never wait
on each other's rows), on SQLite a transaction that takes the write lock first (``BEGIN
IMMEDIATE``, the catalog's way). It renews the lease while it works; a renewal or a finish
by a worker that no longer holds the job (it was taken over) is refused, so a job is ended
once. Jobs are written to be run again: a handler finishes what a dead worker left.
No library serves both engines (procrastinate is PostgreSQL-only; Celery and Dramatiq need a
broker), hence this small table.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select

from grid.catalog.models import Job, Owner
from grid.errors import ConflictError, JobNotFoundError
from grid.records import JobInfo

if TYPE_CHECKING:
    from grid.catalog.catalog import Catalog

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued", "running", "succeeded", "failed", "cancelled",
)  # fmt: skip
ENDED = (SUCCEEDED, FAILED, CANCELLED)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class JobQueue:
    """Jobs in the database ``catalog`` uses (any owner's: workers serve every owner)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def enqueue(self, owner_id: int, kind: str, payload: dict[str, Any]) -> JobInfo:
        """A new queued job."""
        with self._catalog.transaction() as s:
            return self._info(s, self.add(s, owner_id, kind, payload))

    def enqueue_once(self, owner_id: int, kind: str, payload: dict[str, Any]) -> JobInfo:
        """The job of ``kind`` with this very ``payload`` that has not ended, else a new one
        (two servers asked for it at once: one job; the owner's row is the lock)."""
        text = json.dumps(payload, sort_keys=True)
        with self._catalog.transaction() as s:
            s.get(Owner, owner_id, with_for_update=True)
            job = s.scalar(
                select(Job)
                .where(
                    Job.owner_id == owner_id,
                    Job.kind == kind,
                    Job.payload == text,
                    Job.state.not_in(ENDED),
                )
                .limit(1)
            )
            return self._info(s, job or self.add(s, owner_id, kind, payload))

    def add(self, s: Any, owner_id: int, kind: str, payload: dict[str, Any]) -> Job:
        """A new queued job in the open transaction ``s`` (another table's change commits
        with it)."""
        job = Job(
            owner_id=owner_id,
            kind=kind,
            payload=json.dumps(payload, sort_keys=True),
            state=QUEUED,
            attempts=0,
            worker="",
            created_at=self._catalog.now(),
            result="{}",
            error="",
        )
        s.add(job)
        s.flush()
        return job

    def info_of(self, s: Any, job: Job) -> JobInfo:
        """The record of row ``job`` of the open transaction ``s``."""
        return self._info(s, job)

    def claim(self, worker: str, lease_seconds: float, kinds: Sequence[str]) -> JobInfo | None:
        """The next job for ``worker`` (queued, or running with a lapsed lease), now held by
        it for ``lease_seconds``; None when there is none."""
        now = self._catalog.now()
        with self._catalog.transaction() as s:
            job = s.scalar(
                select(Job)
                .where(
                    Job.kind.in_(list(kinds)),
                    or_(
                        Job.state == QUEUED,
                        (Job.state == RUNNING) & (Job.lease_until < now),
                    ),
                )
                .order_by(Job.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if job is None:
                return None
            job.state, job.worker = RUNNING, worker
            job.attempts += 1
            job.lease_until = now + timedelta(seconds=lease_seconds)
            job.started_at = job.started_at or now
            return self._info(s, job)

    def renew(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        """Extend ``worker``'s hold; False if it no longer holds the job (taken over,
        cancelled): the worker must stop."""
        with self._catalog.transaction() as s:
            job = s.get(Job, job_id, with_for_update=True)
            if job is None or job.state != RUNNING or job.worker != worker:
                return False
            job.lease_until = self._catalog.now() + timedelta(seconds=lease_seconds)
            return True

    def report(self, job_id: int, worker: str, progress: dict[str, Any]) -> None:
        """Record how far ``worker`` has come with a job it holds (its ``result`` until it
        ends: ``{"progress": ...}``)."""
        with self._catalog.transaction() as s:
            job = s.get(Job, job_id, with_for_update=True)
            if job is not None and job.state == RUNNING and job.worker == worker:
                job.result = json.dumps({"progress": progress}, default=str)

    def finish(
        self,
        job_id: int,
        worker: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> JobInfo:
        """End a job ``worker`` holds: succeeded with ``result``, or failed with ``error``.

        Raises:
            ConflictError: ``worker`` no longer holds it (nothing is changed).
        """
        with self._catalog.transaction() as s:
            job = self._row(s, job_id, lock=True)
            if job.state != RUNNING or job.worker != worker:
                raise ConflictError(f"job {job_id} is no longer held by {worker}: {job.state}")
            job.state = FAILED if error is not None else SUCCEEDED
            job.result, job.error = json.dumps(result or {}, default=str), error or ""
            job.finished_at, job.lease_until = self._catalog.now(), None
            return self._info(s, job)

    def cancel(self, job_id: int, owner_ids: Sequence[int]) -> JobInfo:
        """Cancel a job of one of ``owner_ids`` that has not ended (its worker stops at its
        next renewal).

        Raises:
            JobNotFoundError: none of theirs has that id.
            ConflictError: it has ended already.
        """
        with self._catalog.transaction() as s:
            job = self._row(s, job_id, lock=True)
            if job.owner_id not in owner_ids:
                raise JobNotFoundError(f"no job {job_id}", job=job_id)
            if job.state in ENDED:
                raise ConflictError(f"job {job_id} has ended already: {job.state}")
            job.state, job.finished_at, job.lease_until = CANCELLED, self._catalog.now(), None
            job.error = "cancelled"
            return self._info(s, job)

    def get(self, job_id: int, owner_ids: Sequence[int] | None = None) -> JobInfo:
        """Job ``job_id`` (of one of ``owner_ids`` when given).

        Raises:
            JobNotFoundError: there is none (or not theirs).
        """
        with self._catalog.transaction() as s:
            job = self._row(s, job_id)
            if owner_ids is not None and job.owner_id not in owner_ids:
                raise JobNotFoundError(f"no job {job_id}", job=job_id)
            return self._info(s, job)

    def list(self, owner_ids: Sequence[int], limit: int = 1000) -> builtins.list[JobInfo]:
        """The newest jobs of ``owner_ids``, newest first."""
        with self._catalog.transaction() as s:
            rows = s.scalars(
                select(Job)
                .where(Job.owner_id.in_(list(owner_ids)))
                .order_by(Job.id.desc())
                .limit(limit)
            )
            return [self._info(s, job) for job in rows]

    def prune(self, older_than: float) -> int:
        """Delete the jobs that ended more than ``older_than`` seconds ago; how many."""
        cutoff = self._catalog.now() - timedelta(seconds=older_than)
        with self._catalog.transaction() as s:
            gone = s.execute(delete(Job).where(Job.state.in_(ENDED), Job.finished_at < cutoff))
            return int(getattr(gone, "rowcount", 0) or 0)

    def counts(self) -> dict[tuple[str, str], int]:
        """How many jobs there are of each (kind, state)."""
        with self._catalog.transaction() as s:
            rows = s.execute(
                select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
            )
            return {(kind, state): int(n) for kind, state, n in rows}

    def _row(self, s: Any, job_id: int, lock: bool = False) -> Job:
        job = s.get(Job, job_id, with_for_update=lock) if job_id > 0 else None
        if job is None:
            raise JobNotFoundError(f"no job {job_id}", job=job_id)
        return job  # type: ignore[no-any-return]

    @staticmethod
    def _info(s: Any, job: Job) -> JobInfo:
        owner = s.get(Owner, job.owner_id)
        return JobInfo(
            id=job.id,
            kind=job.kind,
            owner=owner.name if owner is not None else "",
            payload=json.loads(job.payload),
            state=job.state,
            attempts=job.attempts,
            worker=job.worker,
            lease_until=_utc(job.lease_until),
            created_at=_utc(job.created_at) or job.created_at,
            started_at=_utc(job.started_at),
            finished_at=_utc(job.finished_at),
            result=json.loads(job.result),
            error=job.error,
        )
