"""Runs and sessions, and the datastore versions they attach (lineage).

A run is live while its status is queued or running and its supervising process keeps
renewing its lease. A version a live run attaches is never deleted: ``refuse_in_use`` is
called by the catalog's deletes inside their transaction, and attaching locks the version's
row, so a delete and an attach never both win.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grid.catalog.models import Datastore, Owner, Run, RunUse, Version
from grid.errors import ConflictError, RunNotFoundError, VersionNotFoundError
from grid.records import RUN_LIVE, SUCCEEDED, Attachment, RunInfo

if TYPE_CHECKING:
    from grid.catalog.catalog import Catalog

_ENDED = ("succeeded", "failed", "stopped", "lost")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Use:
    """A version to attach: its owner's id, the datastore's plain name and number, how the
    run's user names it and where the run mounts it."""

    owner_id: int
    name: str
    number: int
    shown_as: str
    path: str


def refuse_in_use(s: Session, datastore_id: int, numbers: Sequence[int], now: datetime) -> None:
    """Raise ConflictError naming the live run or session that attaches one of ``numbers``."""
    rows = s.execute(
        select(RunUse.shown_as, RunUse.number, Run)
        .join(Run, Run.id == RunUse.run_id)
        .where(
            RunUse.datastore_id == datastore_id,
            RunUse.number.in_(list(numbers)),
            RunUse.detached_at.is_(None),
            Run.status.in_(RUN_LIVE),
        )
    ).all()
    for shown_as, number, run in rows:
        lease = _utc(run.lease_expires_at)
        if lease is not None and lease > now:
            raise in_use(f"{shown_as}:{number}", run.kind, run.id, run.name, run.host)


def in_use(ref: str, kind: str, run_id: int, name: str, host: str) -> ConflictError:
    """The refusal of a delete of ``ref``, which live run (or session) ``run_id`` attaches."""
    stop = name if kind == "session" else str(run_id)
    return ConflictError(
        f"{ref} is in use by {kind} {run_id} ({name}) on {host}: stop it first "
        f"(grid {kind} stop {stop})"
    )


class RunRegistry:
    """The runs of the owner ``catalog`` acts for (a user), in its database."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    # -- writes ----------------------------------------------------------------------------
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
        uses: Sequence[Use],
        details: dict[str, str] | None = None,
    ) -> RunInfo:
        """Record a new run, queued, holding ``uses`` (each must be a succeeded version)."""
        now = self._catalog.now()
        with self._catalog.transaction() as s:
            run = Run(
                user_id=self._catalog.owner_id,
                kind=kind,
                name=name,
                command=json.dumps(list(command)),
                executor=executor,
                host=host,
                pid=pid,
                status="queued",
                created_at=now,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                log_path=log_path,
                job_id="",
                details=json.dumps(details or {}),
            )
            s.add(run)
            s.flush()
            if not name:
                run.name = f"{kind}-{run.id}"
            self._attach(s, run, uses, now)
            return self._record(s, run)

    def _attach(self, s: Session, run: Run, uses: Sequence[Use], now: datetime) -> None:
        for use in uses:
            ds = s.scalar(
                select(Datastore).where(
                    Datastore.owner_id == use.owner_id,
                    Datastore.name == use.name,
                    Datastore.deleted_at.is_(None),
                )
            )
            v = None
            if ds is not None:
                v = s.scalar(
                    select(Version)
                    .where(Version.datastore_id == ds.id, Version.number == use.number)
                    .with_for_update()
                )
            if ds is None or v is None:
                raise VersionNotFoundError(
                    f"{use.shown_as}:{use.number} does not exist (deleted meanwhile?)",
                    datastore=use.shown_as,
                    version=use.number,
                )
            if v.status != SUCCEEDED:
                raise ConflictError(
                    f"{use.shown_as}:{use.number} is {v.status}: only succeeded versions attach"
                )
            s.add(
                RunUse(
                    run_id=run.id,
                    datastore_id=ds.id,
                    number=use.number,
                    shown_as=use.shown_as,
                    path=use.path,
                    attached_at=now,
                )
            )
        s.flush()

    def update(self, run_id: int, lease_seconds: float | None = None, **changes: Any) -> RunInfo:
        """Change ``status``, ``exit_code``, ``pid``, ``host``, ``job_id`` or ``details`` of
        a run of the owner, and renew its lease for ``lease_seconds``; a run moving to an
        ended status gets its end time (and a running one its start time)."""
        now = self._catalog.now()
        with self._catalog.transaction() as s:
            run = self._row(s, run_id, lock=True)
            for key, value in changes.items():
                if value is None:
                    continue
                if key == "details":
                    value = json.dumps({**json.loads(run.details), **value})
                setattr(run, key, value)
            status = changes.get("status")
            if status == "running" and run.started_at is None:
                run.started_at = now
            if status in _ENDED:
                run.ended_at = run.ended_at or now
                run.lease_expires_at = None
            elif lease_seconds is not None:
                run.lease_expires_at = now + timedelta(seconds=lease_seconds)
            return self._record(s, run)

    def attach(self, run_id: int, uses: Sequence[Use]) -> RunInfo:
        """Attach more versions to a live run."""
        with self._catalog.transaction() as s:
            run = self._row(s, run_id, lock=True)
            if run.status not in RUN_LIVE:
                raise ConflictError(f"{run.kind} {run.id} ({run.name}) is {run.status}")
            self._attach(s, run, uses, self._catalog.now())
            return self._record(s, run)

    def detach(self, run_id: int, shown_as: str, number: int) -> RunInfo:
        """Mark ``shown_as:number`` detached from a run (the lineage stays)."""
        with self._catalog.transaction() as s:
            run = self._row(s, run_id, lock=True)
            use = s.scalar(
                select(RunUse).where(
                    RunUse.run_id == run.id,
                    RunUse.shown_as == shown_as,
                    RunUse.number == number,
                    RunUse.detached_at.is_(None),
                )
            )
            if use is None:
                raise ConflictError(f"{shown_as}:{number} is not attached to {run.name}")
            use.detached_at = self._catalog.now()
            return self._record(s, run)

    # -- reads -----------------------------------------------------------------------------
    def get(self, run_id: int) -> RunInfo:
        with self._catalog.transaction() as s:
            return self._record(s, self._row(s, run_id))

    def list(self, kind: str | None = None) -> builtins.list[RunInfo]:
        """The owner's runs (or sessions), oldest first."""
        with self._catalog.transaction() as s:
            query = select(Run).where(Run.user_id == self._catalog.owner_id).order_by(Run.id)
            if kind is not None:
                query = query.where(Run.kind == kind)
            return [self._record(s, run) for run in s.scalars(query)]

    def users_of(self, owner_id: int, name: str, number: int) -> builtins.list[RunInfo]:
        """Every run and session, of any user, that attached ``name:number`` of ``owner_id``."""
        with self._catalog.transaction() as s:
            runs = s.scalars(
                select(Run)
                .join(RunUse, RunUse.run_id == Run.id)
                .join(Datastore, Datastore.id == RunUse.datastore_id)
                .where(
                    Datastore.owner_id == owner_id,
                    Datastore.name == name,
                    Datastore.deleted_at.is_(None),
                    RunUse.number == number,
                )
                .order_by(Run.id)
                .distinct()
            )
            return [self._public(s, run, owner_id, name, number) for run in runs]

    def scope(self, run_id: int) -> builtins.list[tuple[str, str, int, str]]:
        """``(owner, datastore, number, manifest_id)`` of each version run ``run_id`` of the
        owner attaches now; none once it ended or its lease lapsed (what its run key reads)."""
        with self._catalog.transaction() as s:
            run = self._row(s, run_id)
            lease = _utc(run.lease_expires_at)
            if run.status not in RUN_LIVE or lease is None or lease <= self._catalog.now():
                return []
            rows = s.execute(
                select(Owner.name, Datastore.name, RunUse.number, Version.manifest_id)
                .join(Datastore, Datastore.id == RunUse.datastore_id)
                .join(Owner, Owner.id == Datastore.owner_id)
                .join(
                    Version,
                    (Version.datastore_id == Datastore.id) & (Version.number == RunUse.number),
                )
                .where(RunUse.run_id == run.id, RunUse.detached_at.is_(None))
            )
            return [(o, n, int(v), m) for o, n, v, m in rows]

    def _public(self, s: Session, run: Run, owner_id: int, name: str, number: int) -> RunInfo:
        """What anyone who reads ``name:number`` may know of a run that used it: who, when,
        how it went; not its command, log, details or other datastores."""
        full = self._record(s, run, details=False)
        uses = s.execute(
            select(RunUse)
            .join(Datastore, Datastore.id == RunUse.datastore_id)
            .where(
                RunUse.run_id == run.id,
                Datastore.owner_id == owner_id,
                Datastore.name == name,
                RunUse.number == number,
            )
        ).scalars()
        return dataclasses.replace(
            full,
            command=(),
            log_path="",
            pid=0,
            datastores=tuple(
                Attachment(u.shown_as, u.number, "", _utc(u.attached_at), _utc(u.detached_at))
                for u in uses
            ),
        )

    def _row(self, s: Session, run_id: int, lock: bool = False) -> Run:
        query = select(Run).where(Run.id == run_id, Run.user_id == self._catalog.owner_id)
        run = s.scalar(query.with_for_update() if lock else query)
        if run is None:
            raise RunNotFoundError(f"no run or session {run_id}", run=str(run_id))
        return run

    def _record(self, s: Session, run: Run, details: bool = True) -> RunInfo:
        uses = s.scalars(select(RunUse).where(RunUse.run_id == run.id).order_by(RunUse.id))
        user = s.scalar(select(Owner.name).where(Owner.id == run.user_id)) or ""
        shown = json.loads(run.details) if details else {}
        return RunInfo(
            id=run.id,
            kind=run.kind,
            name=run.name,
            user=user,
            command=tuple(json.loads(run.command)),
            executor=run.executor,
            host=run.host,
            pid=run.pid,
            status=run.status,
            exit_code=run.exit_code,
            created_at=_utc(run.created_at),  # type: ignore[arg-type]
            started_at=_utc(run.started_at),
            ended_at=_utc(run.ended_at),
            datastores=tuple(
                Attachment(u.shown_as, u.number, u.path, _utc(u.attached_at), _utc(u.detached_at))
                for u in uses
            ),
            log_path=run.log_path,
            job_id=run.job_id,
            details=tuple(sorted((str(k), str(v)) for k, v in shown.items())),
            lease_expires_at=_utc(run.lease_expires_at),
        )
