"""Workers: processes (``grid worker``), or a thread of each ``grid server``, that claim jobs
from the catalog's jobs table (``grid.catalog.jobs``) and run them.

A worker holds its job under a lease it renews every third of its length; if the worker dies
(kill -9, a machine gone), the lease lapses and another worker takes the job over. Jobs are
idempotent: an import taken over resumes the same version (its create's own lease lapsed
too), reading only what is missing. Kinds: ``import`` (an archive URL or an ``s3://``
prefix, made into the next version of a datastore), ``schedule`` (a turn of a schedule the
server keeps, ``grid.server.scheduled``, with its retention), ``verify`` (the check of a
create's upload at its commit, ``grid.server.commits``) and ``gc`` (an owner's); workers also
queue the due schedules' turns.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from grid.catalog.jobs import JobQueue
from grid.catalog.schedules import ScheduleBook
from grid.errors import ConflictError, GridError, JobCancelledError
from grid.records import JobInfo
from grid.server.import_jobs import Report, gc_job, import_job
from grid.server.problems import body_of
from grid.server.state import ServerState

LEASE_SECONDS = 30.0
IDLE_SECONDS = 1.0  # between looks at an empty queue
CHECK_SECONDS = 2.0  # between lease renewals at most (a cancel shows within this)
FIRE_SECONDS = 2.0  # between looks for due schedules
CHECK_LANES = 2  # threads of a worker that check commits only
KEEP_JOBS = 7 * 86400.0  # seconds an ended job stays listed
# Set when this process queues a job: its own worker looks at once instead of idling on.
WAKE = threading.Event()


def _schedule_job(state: ServerState, job: JobInfo, report: Report) -> dict[str, Any]:
    from grid.server.scheduled import schedule_job

    return schedule_job(state, job, report)


def _verify_job(state: ServerState, job: JobInfo, report: Report) -> dict[str, Any]:
    from grid.server.commits import verify_job

    return verify_job(state, job, report)


HANDLERS: dict[str, Callable[[ServerState, JobInfo, Report], dict[str, Any]]] = {
    "import": import_job,
    "schedule": _schedule_job,
    "verify": _verify_job,
    "gc": gc_job,
}
REPORT_EVERY = 0.5  # seconds between progress records of a job, at most


class _Throttled:
    """Passes on a report at most every ``REPORT_EVERY`` seconds; ``flush`` the last."""

    def __init__(self, send: Report) -> None:
        self._send, self._last = send, 0.0
        self._held: dict[str, Any] | None = None

    last: dict[str, Any] | None = None  # the latest report, sent or held

    def __call__(self, progress: dict[str, Any]) -> None:
        self._held = self.last = progress
        if time.monotonic() - self._last >= REPORT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._held is not None:
            with contextlib.suppress(GridError):  # the database away a moment: next time
                self._send(self._held)
            self._held, self._last = None, time.monotonic()


class Worker:
    """Claims and runs jobs for ``state``'s database and storage, as ``name``."""

    def __init__(
        self, state: ServerState, name: str | None = None, lease_seconds: float = LEASE_SECONDS
    ) -> None:
        self.state = state
        self.jobs = JobQueue(state.catalog)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_seconds = lease_seconds
        self._fire_lock, self._next_fire, self._next_prune = threading.Lock(), 0.0, 0.0

    def run_one(self, kinds: Sequence[str] = tuple(HANDLERS)) -> JobInfo | None:
        """Claim one job (of ``kinds``) and run it to its end; None when there is none."""
        job = self.jobs.claim(self.name, self.lease_seconds, list(kinds))
        if job is None:
            return None
        done, lost = threading.Event(), threading.Event()
        beat = threading.Thread(target=self._renew, args=(job.id, done, lost), daemon=True)
        beat.start()
        result: dict[str, Any] | None = None
        error: str | None = None

        reporter = _Throttled(lambda p: self.jobs.report(job.id, self.name, p))

        def report(progress: dict[str, Any]) -> None:
            if lost.is_set():  # raised into the handler, which stops there (a create fails)
                raise JobCancelledError(f"job {job.id} was cancelled", job=job.id)
            reporter(progress)

        try:
            result = HANDLERS[job.kind](self.state, job, report)
            if reporter.last is not None:  # the end shows how far it came
                result = {"progress": reporter.last, **result}
        except GridError as exc:
            error, result = exc.message, {"error": body_of(exc)}
        except Exception as exc:  # a bug: the job fails with it, the worker goes on
            error = f"internal error: {type(exc).__name__}: {exc}"
            result = {"error": body_of(GridError(error))}
        finally:
            done.set()
            beat.join()
        with contextlib.suppress(ConflictError):  # taken over or cancelled meanwhile
            return self.jobs.finish(job.id, self.name, result=result, error=error)
        return self.jobs.get(job.id)

    def _renew(self, job_id: int, done: threading.Event, lost: threading.Event) -> None:
        """Renew the lease (often enough that a cancel stops the job within seconds); set
        ``lost`` once the job is no longer this worker's (cancelled, or taken over)."""
        while not done.wait(min(self.lease_seconds / 3, CHECK_SECONDS)):
            with contextlib.suppress(GridError):
                if not self.jobs.renew(job_id, self.name, self.lease_seconds):
                    lost.set()
                    return  # its end will not be recorded

    def fire_schedules(self) -> None:
        """Queue the jobs of due schedules, looking every ``FIRE_SECONDS`` at most (any
        worker may: each schedule fires once, ``grid.catalog.schedules``); once an hour,
        forget the jobs that ended more than ``KEEP_JOBS`` seconds ago."""
        with self._fire_lock:
            now = time.monotonic()
            if now < self._next_fire:
                return
            self._next_fire = now + FIRE_SECONDS
            prune = now >= self._next_prune
            if prune:
                self._next_prune = now + 3600
        ScheduleBook(self.state.catalog).fire_due()
        if prune:
            self.jobs.prune(KEEP_JOBS)

    def serve(self, stop: threading.Event, concurrency: int = 1) -> None:
        """Run jobs on ``concurrency`` threads, and the checks of commits on ``CHECK_LANES``
        more (a create's commit never waits behind a long import), until ``stop`` is set."""

        def loop(kinds: Sequence[str]) -> None:
            while not stop.is_set():
                try:
                    self.fire_schedules()
                    ran = self.run_one(kinds)
                except GridError:  # the database is away: try again shortly
                    ran = None
                if ran is None:
                    WAKE.wait(IDLE_SECONDS)
                    WAKE.clear()

        lanes = [tuple(HANDLERS)] * concurrency + [("verify",)] * CHECK_LANES
        threads = [
            threading.Thread(target=loop, args=(kinds,), name=f"grid-worker-{i}", daemon=True)
            for i, kinds in enumerate(lanes)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
