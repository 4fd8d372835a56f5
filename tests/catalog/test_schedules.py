"""Schedules on both engines: a due schedule fires once however many workers look at once,
its next time moves on by its interval (no burst after a long outage), a turn still running
makes the next one skip, replacing a schedule's source forgets what the old source looked
like, and owners see only their own."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from grid.catalog import Accounts, Catalog
from grid.catalog.jobs import JobQueue
from grid.catalog.schedules import KIND, ScheduleBook
from grid.errors import NotFoundError
from tests.catalog.test_catalog_engines import url  # noqa: F401 - the engine fixture

HOUR = 3600


@pytest.fixture
def book(url):  # noqa: F811
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    catalog = Catalog(url, owner=None, clock=lambda: now[0])
    accounts = Accounts(catalog)
    for name in ("alice", "bob"):
        accounts.create_user(name)
    ids = {n: catalog.owner_id_of(n) for n in ("alice", "bob")}
    yield ScheduleBook(catalog), JobQueue(catalog), ids, now
    catalog.close()


def test_a_schedule_fires_at_once_then_every_interval(book):
    schedules, jobs, ids, now = book
    made = schedules.put(ids["alice"], "cats", "https://x/cats.tar", HOUR, 3, {"keep_root": 1})
    assert made.next_at == now[0] and made.last_job is None and made.owner == "alice"
    (job,) = schedules.fire_due()
    assert job.kind == KIND and job.owner == "alice"
    want = {"name": "cats", "source": "https://x/cats.tar", "keep_last": 3, "keep_root": 1}
    assert job.payload == {"schedule_id": job.payload["schedule_id"], **want}
    assert schedules.fire_due() == []  # not due again
    (listed,) = schedules.list([ids["alice"]])
    assert listed.next_at == now[0] + timedelta(hours=1) and listed.last_job.id == job.id
    held = jobs.claim("w", 60, [KIND])
    now[0] += timedelta(hours=1)
    assert schedules.fire_due() == []  # the first turn still runs: this one is skipped
    jobs.finish(held.id, "w", result={"unchanged": True})
    now[0] += timedelta(hours=1)
    (second,) = schedules.fire_due()
    assert second.id != job.id


def test_a_long_outage_gives_one_turn_not_a_burst(book):
    schedules, jobs, ids, now = book
    schedules.put(ids["alice"], "cats", "https://x/cats.tar", HOUR, None, {})
    (job,) = schedules.fire_due()
    jobs.cancel(job.id, [ids["alice"]])
    now[0] += timedelta(hours=10, minutes=30)  # every server was down
    assert len(schedules.fire_due()) == 1
    (s,) = schedules.list([ids["alice"]])
    assert s.next_at == datetime(2026, 1, 1, 11, tzinfo=UTC)  # on the hour, as before
    assert schedules.fire_due() == []


def test_replacing_and_removing(book):
    schedules, _, ids, _ = book
    first = schedules.put(ids["alice"], "cats", "s3://b/cats/", HOUR, None, {})
    (job,) = schedules.fire_due()
    schedules.record(job.payload["schedule_id"], "s3://b/cats/", "s3:abc")
    assert schedules.get(job.payload["schedule_id"]) == ("s3://b/cats/", "s3:abc")
    schedules.record(job.payload["schedule_id"], "s3://other/", "s3:zzz")  # not its source
    assert schedules.get(job.payload["schedule_id"])[1] == "s3:abc"
    again = schedules.put(ids["alice"], "cats", "s3://b/cats/", 2 * HOUR, 5, {})
    assert again.created_at == first.created_at and again.every_seconds == 2 * HOUR
    assert schedules.get(job.payload["schedule_id"])[1] == "s3:abc"  # same source: kept
    schedules.put(ids["alice"], "cats", "s3://b/dogs/", HOUR, None, {})
    assert schedules.get(job.payload["schedule_id"]) == ("s3://b/dogs/", "")  # forgotten
    assert schedules.list([ids["bob"]]) == []
    with pytest.raises(NotFoundError):
        schedules.remove(ids["bob"], "cats")  # not bob's
    schedules.remove(ids["alice"], "cats")
    assert schedules.list([ids["alice"]]) == []
    assert schedules.get(job.payload["schedule_id"]) == ("", "")
    with pytest.raises(NotFoundError):
        schedules.remove(ids["alice"], "cats")


def test_many_workers_looking_at_once_fire_each_schedule_once(book):
    schedules, jobs, ids, _ = book
    for i in range(5):
        schedules.put(ids["alice"], f"s{i}", f"https://x/{i}.tar", HOUR, None, {})
    fired: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def look() -> None:
        start.wait()
        got = schedules.fire_due()
        with lock:
            fired.extend(j.id for j in got)

    threads = [threading.Thread(target=look) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fired) == len(set(fired)) == 5
    assert len(jobs.list([ids["alice"]])) == 5
