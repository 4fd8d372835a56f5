"""Records as JSON on the wire and back (the server sends them as FastAPI renders the
dataclasses of ``grid.records``)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from grid.records import DatastoreInfo, VersionInfo

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
