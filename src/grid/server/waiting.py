"""A request that waits on a job: queue it once (a retried request, on this server or another
behind the load balancer, finds the same job queued or running), wake this process's worker,
and answer with the job's result, or raise the error it ended with, rebuilt.
"""

from __future__ import annotations

import time
from typing import Any

from grid.catalog.jobs import ENDED, QUEUED, JobQueue
from grid.errors import StorageError, rebuild
from grid.server.state import ServerState
from grid.server.worker import WAKE

_POLL = 0.2  # seconds between looks at the job
NO_WORKER = 60.0  # seconds a job may stay queued before the request says no worker runs


def run_job(
    state: ServerState, owner_id: int, kind: str, payload: dict[str, Any], what: str
) -> dict[str, Any]:
    """The result of the job of ``kind`` with ``payload`` for ``owner_id`` once it ended.

    Raises:
        GridError: the one the job failed with (rebuilt from its problem).
        StorageError: (transient) no worker took the job up within ``NO_WORKER`` seconds.
    """
    jobs = JobQueue(state.catalog)
    job = jobs.enqueue_once(owner_id, kind, payload)
    WAKE.set()
    queued_until = time.monotonic() + NO_WORKER
    while job.state not in ENDED:
        if job.state == QUEUED and time.monotonic() > queued_until:
            raise StorageError(
                f"no worker has taken up {what} for {NO_WORKER:.0f} s: is a `grid worker` "
                "running (or a `grid server` without --no-jobs)?",
                transient=True,
            )
        time.sleep(_POLL)
        job = jobs.get(job.id)
    if job.state == "succeeded":
        return job.result
    problem = job.result.get("error") or {}
    raise rebuild(
        str(problem.get("code", "conflict")),
        str(problem.get("detail", job.error or f"{what} ended {job.state}")),
        problem.get("attrs") or {},
    )
