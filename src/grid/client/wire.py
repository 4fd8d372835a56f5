"""Records as JSON on the wire and back (the server sends them as FastAPI renders the
dataclasses of ``grid.records``)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from grid.records import Attachment, DatastoreInfo, JobInfo, RunInfo, ScheduleInfo, VersionInfo

_TIMES = ("created_at", "finished_at", "lease_expires_at")


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def version_from(data: dict[str, Any], datastore: str | None = None) -> VersionInfo:
    """A ``VersionInfo`` from its JSON (``datastore`` renames it, e.g. ``team/name``)."""
    known = {f.name for f in fields(VersionInfo)}
    values: dict[str, Any] = {
        k: (_time(v) if k in _TIMES else v) for k, v in data.items() if k in known
    }
    if datastore is not None:
        values["datastore"] = datastore
    return VersionInfo(**values)


def datastore_from(data: dict[str, Any], name: str | None = None) -> DatastoreInfo:
    """A ``DatastoreInfo`` from its JSON (``name`` renames it and its latest version)."""
    latest = data.get("latest")
    created = _time(data["created_at"])
    assert created is not None
    return DatastoreInfo(
        name=name or data["name"],
        created_at=created,
        versions=int(data["versions"]),
        latest=None if latest is None else version_from(latest, name),
    )


def run_from(data: dict[str, Any]) -> RunInfo:
    """A ``RunInfo`` from its JSON."""
    uses = tuple(
        Attachment(
            a["datastore"],
            int(a["version"]),
            a.get("path", ""),
            _time(a.get("attached_at")),
            _time(a.get("detached_at")),
        )
        for a in data.get("datastores", ())
    )
    created = _time(data["created_at"])
    assert created is not None
    return RunInfo(
        id=int(data["id"]),
        kind=data["kind"],
        name=data["name"],
        user=data["user"],
        command=tuple(data["command"]),
        executor=data["executor"],
        host=data["host"],
        pid=int(data["pid"]),
        status=data["status"],
        exit_code=data.get("exit_code"),
        created_at=created,
        started_at=_time(data.get("started_at")),
        ended_at=_time(data.get("ended_at")),
        datastores=uses,
        log_path=data.get("log_path", ""),
        job_id=data.get("job_id", ""),
        details=tuple((str(k), str(v)) for k, v in data.get("details", ())),
        lease_expires_at=_time(data.get("lease_expires_at")),
    )


def job_from(data: dict[str, Any]) -> JobInfo:
    """A ``JobInfo`` from its JSON."""
    created = _time(data["created_at"])
    assert created is not None
    return JobInfo(
        id=int(data["id"]),
        kind=data["kind"],
        owner=data["owner"],
        payload=dict(data.get("payload") or {}),
        state=data["state"],
        attempts=int(data["attempts"]),
        worker=data.get("worker", ""),
        lease_until=_time(data.get("lease_until")),
        created_at=created,
        started_at=_time(data.get("started_at")),
        finished_at=_time(data.get("finished_at")),
        result=dict(data.get("result") or {}),
        error=data.get("error", ""),
    )


def schedule_from(data: dict[str, Any], name: str | None = None) -> ScheduleInfo:
    """A ``ScheduleInfo`` from its JSON (``name`` renames it, e.g. ``team/name``)."""
    next_at, created = _time(data["next_at"]), _time(data["created_at"])
    assert next_at is not None and created is not None
    last = data.get("last_job")
    return ScheduleInfo(
        name=name or data["name"],
        owner=data["owner"],
        source=data["source"],
        every_seconds=int(data["every_seconds"]),
        keep_last=data.get("keep_last"),
        next_at=next_at,
        created_at=created,
        last_job=None if last is None else job_from(last),
    )
