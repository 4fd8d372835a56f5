"""A commit's check of an upload, as a job (kind ``verify``): the optimizing step between a
client's last upload and ``succeeded``.

The commit request queues the job (once: a retried commit, on this server or another behind
the load balancer, finds the job already queued or running and waits for it) and answers
when it ends. A worker checks every pack and the manifest (``grid.service.publish``) and
makes the version succeeded, or failed with the reason. If the worker dies mid-check,
another takes the job over once its lease lapses, and the pack checks it left are taken over
too (``grid.catalog.packs.STALE``); the client's version lease, which its create keeps
renewing, holds meanwhile.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from grid.errors import ConflictError, GridError
from grid.records import FAILED, SUCCEEDED, UNFINISHED, JobInfo, Lease, VersionInfo
from grid.server.access import OwnerView
from grid.server.import_jobs import Report, owner_view
from grid.server.operations import VERIFIED
from grid.server.state import ServerState
from grid.server.waiting import run_job
from grid.service.publish import OwnerArea, commit

KIND = "verify"


def held(v: VersionInfo, lease: Lease) -> bool:
    return (v.host, v.pid) == (lease.host, lease.pid)


def commit_version(state: ServerState, view: OwnerView, name: str, number: int, lease: Lease
                   ) -> VersionInfo:  # fmt: skip
    """Have a worker check what ``lease``'s create uploaded for ``name:number`` and make it
    succeeded; the version once it is.

    Raises:
        ConflictError: the create does not hold the version.
        UploadRefusedError: (and others the check raises) the version failed, nothing of it
            published.
        StorageError: (transient) no worker took the check up (``grid worker`` not running).
    """
    current = view.catalog.version(name, number)
    if current.status == SUCCEEDED and held(current, lease):
        return current  # a retried commit (its first answer was lost): already done
    if current.status not in UNFINISHED or not held(current, lease):
        raise ConflictError(f"{current.ref} is not held by this create (it is {current.status})")
    payload = {"name": name, "number": number, "host": lease.host, "pid": lease.pid,
               "lease_seconds": lease.seconds}  # fmt: skip
    run_job(state, view.id, KIND, payload, f"the check of {current.ref}")
    return view.catalog.version(name, number)


def verify_job(state: ServerState, job: JobInfo, report: Report) -> dict[str, Any]:
    """Check an upload and make its version succeeded (or failed, with the reason)."""
    p = job.payload
    view = owner_view(state, job)
    catalog, name, number = view.catalog, str(p["name"]), int(p["number"])
    lease = Lease(str(p["host"]), int(p["pid"]), float(p["lease_seconds"]))
    current = catalog.version(name, number)
    if current.status == SUCCEEDED and held(current, lease):
        return {"version": dataclasses.asdict(current)}  # taken over after it was done
    if current.status not in UNFINISHED or not held(current, lease):
        raise ConflictError(f"{current.ref} is not held by this create (it is {current.status})")
    sharing = [r for r in catalog.manifest_users(current.manifest_id) if r != current.ref]
    if sharing:
        raise ConflictError(f"{current.ref} names the manifest of {sharing[0]}: not its own")
    area = OwnerArea(state.objects, view.name, view.id)
    try:
        done = commit(area, state.packs, current, state.scratch)
        VERIFIED.inc(done.stored_bytes)
    except GridError as exc:
        if not getattr(exc, "transient", False):
            with contextlib.suppress(GridError):
                catalog.set_status(
                    name, number, FAILED, reason=f"upload refused: {exc.message}", lease=None
                )
        raise
    catalog.set_status(
        name,
        number,
        SUCCEEDED,
        files=done.files,
        size=done.size,
        stored_bytes=done.stored_bytes,
        lease=lease,
    )
    return {"version": dataclasses.asdict(catalog.version(name, number))}
