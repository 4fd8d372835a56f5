"""Runs and sessions as records: which version a run attaches, and where runs are kept.

``RunPort`` is what the clients ask of a run registry: ``LocalRuns`` answers from the catalog
(the embedded installation, a server acting for a user), the remote client over HTTP.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from grid.catalog.runs import RunRegistry, Use, in_use
from grid.errors import (
    InvalidNameError,
    UsageError,
    VersionNotFoundError,
    VersionNotReadyError,
)
from grid.records import RUN_LIVE, RUNNING, SUCCEEDED, Attachment, RunInfo, VersionInfo
from grid.service.context import Context
from grid.service.lease import alive


class RunPort(Protocol):
    """The runs of one user (see ``grid.catalog.runs.RunRegistry`` for each call)."""

    def start(
        self,
        *,
        kind: str,
        name: str,
        command: Sequence[str],
        executor: str,
        host: str,
        pid: int,
        log_path: str,
        lease_seconds: float,
        uses: Sequence[Attachment],
        details: dict[str, str] | None = None,
    ) -> RunInfo: ...
    def update(
        self, run_id: int, lease_seconds: float | None = None, **changes: Any
    ) -> RunInfo: ...
    def attach(self, run_id: int, uses: Sequence[Attachment]) -> RunInfo: ...
    def detach(self, run_id: int, shown_as: str, number: int) -> RunInfo: ...
    def get(self, run_id: int) -> RunInfo: ...
    def list(self, kind: str | None = None) -> builtins.list[RunInfo]: ...
    def users_of(self, name: str, number: int) -> builtins.list[RunInfo]: ...
    def job_key(self, run_id: int, seconds: float) -> str: ...


def pin(ctx: Context, name: str, number: int | None, shown_as: str) -> VersionInfo:
    """The version a run attaches: ``number``, or the latest succeeded one.

    Raises:
        VersionNotReadyError: ``number`` has not succeeded.
        VersionNotFoundError: no such version, or none has succeeded yet.
    """
    if number is not None:
        v = ctx.catalog.version(name, number)
        if v.status != SUCCEEDED:
            raise VersionNotReadyError(
                f"{shown_as}:{number} is {v.status}: only succeeded versions attach to a run",
                status=v.status,
            )
        return v
    done = [v for v in ctx.catalog.versions(name) if v.status == SUCCEEDED]
    if not done:
        raise VersionNotFoundError(
            f"{shown_as} has no succeeded version to attach yet", datastore=shown_as, version=0
        )
    return done[-1]


class LocalRuns:
    """``RunPort`` over the catalog's run registry, for datastores of one owner."""

    def __init__(self, registry: RunRegistry, owner_id: int) -> None:
        self._registry = registry
        self._owner_id = owner_id

    def _uses(self, uses: Sequence[Attachment]) -> builtins.list[Use]:
        for a in uses:
            if "/" in a.datastore:
                raise InvalidNameError(
                    f"{a.datastore!r} names another owner's datastore: that needs team mode",
                    rule="OWNER/NAME only when logged in to a grid server",
                )
        return [Use(self._owner_id, a.datastore, a.version, a.datastore, a.path) for a in uses]

    def start(self, *, uses: Sequence[Attachment], **fields: Any) -> RunInfo:
        return self._registry.start(uses=self._uses(uses), **fields)

    def update(self, run_id: int, lease_seconds: float | None = None, **changes: Any) -> RunInfo:
        return self._registry.update(run_id, lease_seconds, **changes)

    def attach(self, run_id: int, uses: Sequence[Attachment]) -> RunInfo:
        return self._registry.attach(run_id, self._uses(uses))

    def detach(self, run_id: int, shown_as: str, number: int) -> RunInfo:
        return self._registry.detach(run_id, shown_as, number)

    def get(self, run_id: int) -> RunInfo:
        return self._registry.get(run_id)

    def list(self, kind: str | None = None) -> builtins.list[RunInfo]:
        return self._registry.list(kind)

    def users_of(self, name: str, number: int) -> builtins.list[RunInfo]:
        return self._registry.users_of(self._owner_id, name, number)

    def job_key(self, run_id: int, seconds: float) -> str:
        raise UsageError(
            "run keys exist in team mode only: an embedded job reads GRID_HOME itself",
            rule="log in to a grid server for run keys",
        )


def refuse_live(runs: RunPort, name: str, numbers: Sequence[int]) -> None:
    """Raise ConflictError naming a live run or session that attaches ``name:N``, one of
    ``numbers`` (the catalog checks again as it deletes; this names the run before a mount's
    reader lock would only say "in use")."""
    now = datetime.now(UTC)
    for number in numbers:
        for run in runs.users_of(name, number):
            lease = run.lease_expires_at
            attached = any(
                a.datastore == name and a.version == number and a.detached_at is None
                for a in run.datastores
            )
            if run.status in RUN_LIVE and attached and lease is not None and lease > now:
                raise in_use(f"{name}:{number}", run.kind, run.id, run.name, run.host)


def reap(runs: RunPort, host_id: str, items: list[RunInfo]) -> builtins.list[RunInfo]:
    """``items`` with the live runs supervised on this host by a process that is gone marked
    lost (in the registry too): nobody will record how they ended."""
    out = []
    for run in items:
        if run.status in ("queued", RUNNING) and run.host == host_id and not alive(run.pid):
            run = runs.update(run.id, status="lost")
        out.append(run)
    return out
