"""Schedules a server keeps: re-imports of an archive URL or S3 prefix into a datastore,
every so often, run by its workers (``grid.server.worker``).

Any worker may look for due schedules; the look is one transaction that locks the due rows
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), moves each one's next
time on and queues its job, so a schedule fires once however many workers look. A run that
is still going when the next is due makes that one skip, as ``flock -n`` does for the
crontab's schedules.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from grid.catalog.jobs import ENDED, JobQueue
from grid.catalog.models import Job, Owner, Schedule
from grid.errors import NotFoundError
from grid.records import JobInfo, ScheduleInfo

if TYPE_CHECKING:
    from grid.catalog.catalog import Catalog

KIND = "schedule"  # the kind of the jobs schedules queue


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ScheduleBook:
    """The schedules in the database ``catalog`` uses (any owner's)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._jobs = JobQueue(catalog)

    def put(
        self,
        owner_id: int,
        name: str,
        source: str,
        every_seconds: int,
        keep_last: int | None,
        options: dict[str, Any],
    ) -> ScheduleInfo:
        """Add the schedule of ``name``, or replace it (its first run is due now)."""
        now = self._catalog.now()
        with self._catalog.transaction() as s:
            row = s.scalar(select(Schedule).where(Schedule.owner_id == owner_id,
                                                  Schedule.name == name))  # fmt: skip
            if row is None:
                row = Schedule(owner_id=owner_id, name=name, created_at=now, fingerprint="")
                s.add(row)
            elif row.source != source:
                row.fingerprint = ""  # another source: its first look makes a version
            row.source, row.every_seconds, row.keep_last = source, every_seconds, keep_last
            row.options, row.next_at = json.dumps(options), now
            s.flush()
            return self._info(s, row)

    def remove(self, owner_id: int, name: str) -> None:
        """Remove the schedule of ``name`` (a run under way finishes).

        Raises:
            NotFoundError: ``name`` has none.
        """
        with self._catalog.transaction() as s:
            gone = s.execute(
                delete(Schedule).where(Schedule.owner_id == owner_id, Schedule.name == name)
            )
            if not getattr(gone, "rowcount", 0):
                raise NotFoundError(f"no schedule for {name!r}", name=name)

    def list(self, owner_ids: Sequence[int]) -> builtins.list[ScheduleInfo]:
        """The schedules of ``owner_ids``, by owner and name."""
        with self._catalog.transaction() as s:
            rows = s.scalars(
                select(Schedule)
                .where(Schedule.owner_id.in_(list(owner_ids)))
                .order_by(Schedule.owner_id, Schedule.name)
            )
            return [self._info(s, r) for r in rows]

    def get(self, schedule_id: int) -> tuple[str, str]:
        """(source, fingerprint) of a schedule ("" source: it was removed)."""
        with self._catalog.transaction() as s:
            row = s.get(Schedule, schedule_id)
            return ("", "") if row is None else (row.source, row.fingerprint)

    def fire_due(self, limit: int = 20) -> builtins.list[JobInfo]:
        """Queue a job for each due schedule whose last run has ended, and move every due
        schedule's next time on by its interval (once however many workers call this)."""
        now = self._catalog.now()
        fired = []
        with self._catalog.transaction() as s:
            due = s.scalars(
                select(Schedule)
                .where(Schedule.next_at <= now)
                .order_by(Schedule.next_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in due:
                step = timedelta(seconds=row.every_seconds)
                missed = (now - _utc(row.next_at)) // step  # a server down for a while: no burst
                row.next_at = _utc(row.next_at) + step * (missed + 1)
                last = s.get(Job, row.last_job_id) if row.last_job_id else None
                if last is not None and last.state not in ENDED:
                    continue  # still busy: this turn is skipped
                payload = {"schedule_id": row.id, "name": row.name, "source": row.source,
                           "keep_last": row.keep_last, **json.loads(row.options)}  # fmt: skip
                job = self._jobs.add(s, row.owner_id, KIND, payload)
                row.last_job_id = job.id
                fired.append(self._jobs.info_of(s, job))
        return fired

    def record(self, schedule_id: int, source: str, fingerprint: str) -> None:
        """Remember what ``source`` looked like when a run of the schedule finished (not if
        the schedule changed source or went meanwhile)."""
        with self._catalog.transaction() as s:
            row = s.get(Schedule, schedule_id, with_for_update=True)
            if row is not None and row.source == source:
                row.fingerprint = fingerprint

    def _info(self, s: Any, row: Schedule) -> ScheduleInfo:
        owner = s.get(Owner, row.owner_id)
        last = s.get(Job, row.last_job_id) if row.last_job_id else None
        return ScheduleInfo(
            name=row.name,
            owner=owner.name if owner is not None else "",
            source=row.source,
            every_seconds=row.every_seconds,
            keep_last=row.keep_last,
            next_at=_utc(row.next_at),
            created_at=_utc(row.created_at),
            last_job=None if last is None else self._jobs.info_of(s, last),
        )
