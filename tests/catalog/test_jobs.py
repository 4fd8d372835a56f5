"""The jobs table on both engines: each job is claimed by one worker at a time (also when many
claim at once), a lapsed lease lets another worker take the job over (and the first can then
neither renew nor finish it), a cancelled job stops its worker, and owners see only their own."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from grid.catalog import Accounts, Catalog
from grid.catalog.jobs import JobQueue
from grid.errors import ConflictError, JobNotFoundError
from tests.catalog.test_catalog_engines import url  # noqa: F401 - the engine fixture


@pytest.fixture
def queue(url):  # noqa: F811
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    catalog = Catalog(url, owner=None, clock=lambda: now[0])
    accounts = Accounts(catalog)
    for name in ("alice", "bob"):
        accounts.create_user(name)
    ids = {n: catalog.owner_id_of(n) for n in ("alice", "bob")}
    yield JobQueue(catalog), ids, now
    catalog.close()


def test_claim_renew_finish_in_order(queue):
    jobs, ids, _ = queue
    a = jobs.enqueue(ids["alice"], "import", {"source": "https://x/a.tar"})
    b = jobs.enqueue(ids["bob"], "import", {"source": "https://x/b.tar"})
    assert jobs.claim("w1", 60, ["gc"]) is None  # only the kinds asked for
    first = jobs.claim("w1", 60, ["import"])
    assert first is not None and first.id == a.id and first.state == "running"
    assert first.attempts == 1 and first.worker == "w1" and first.owner == "alice"
    second = jobs.claim("w2", 60, ["import"])
    assert second is not None and second.id == b.id
    assert jobs.claim("w3", 60, ["import"]) is None
    assert jobs.renew(a.id, "w1", 60) and not jobs.renew(a.id, "w2", 60)
    done = jobs.finish(a.id, "w1", result={"version": 1})
    assert done.state == "succeeded" and done.result == {"version": 1} and done.finished_at
    failed = jobs.finish(b.id, "w2", error="the archive is truncated")
    assert failed.state == "failed" and failed.error == "the archive is truncated"
    with pytest.raises(ConflictError):
        jobs.finish(a.id, "w1", result={})  # ended once


def test_a_lapsed_lease_is_taken_over_and_the_old_worker_is_shut_out(queue):
    jobs, ids, now = queue
    job = jobs.enqueue(ids["alice"], "import", {})
    assert jobs.claim("dead", 30, ["import"]).id == job.id
    assert jobs.claim("w2", 30, ["import"]) is None  # held
    now[0] += timedelta(seconds=31)  # the holder stopped renewing (kill -9)
    taken = jobs.claim("w2", 30, ["import"])
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    assert not jobs.renew(job.id, "dead", 30)
    with pytest.raises(ConflictError):
        jobs.finish(job.id, "dead", result={})
    assert jobs.finish(job.id, "w2", result={}).state == "succeeded"


def test_cancel_stops_the_worker_and_owners_see_only_their_own(queue):
    jobs, ids, _ = queue
    job = jobs.enqueue(ids["alice"], "import", {})
    jobs.claim("w1", 60, ["import"])
    with pytest.raises(JobNotFoundError):
        jobs.cancel(job.id, [ids["bob"]])  # not bob's: as if missing
    with pytest.raises(JobNotFoundError):
        jobs.get(job.id, [ids["bob"]])
    assert [j.id for j in jobs.list([ids["bob"]])] == []
    assert jobs.cancel(job.id, [ids["alice"]]).state == "cancelled"
    assert not jobs.renew(job.id, "w1", 60)  # the worker learns at its next renewal
    with pytest.raises(ConflictError):
        jobs.cancel(job.id, [ids["alice"]])
    assert jobs.claim("w2", 60, ["import"]) is None
    with pytest.raises(JobNotFoundError):
        jobs.get(0)


def test_many_workers_claiming_at_once_each_get_a_different_job(queue):
    jobs, ids, _ = queue
    made = {jobs.enqueue(ids["alice"], "import", {"n": i}).id for i in range(20)}
    got: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (job := jobs.claim(name, 60, ["import"])) is not None:
            with lock:
                got.append(job.id)
            jobs.finish(job.id, name, result={})

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == sorted(made)  # every job once, none twice


def test_ended_jobs_are_pruned_after_a_while_and_live_ones_never(queue):
    jobs, ids, now = queue
    done = jobs.enqueue(ids["alice"], "import", {"n": 1})
    jobs.claim("w", 60, ["import"])
    jobs.finish(done.id, "w", result={})
    waiting = jobs.enqueue(ids["alice"], "import", {"n": 2})
    assert jobs.prune(3600) == 0  # ended just now
    now[0] += timedelta(hours=2)
    assert jobs.prune(3600) == 1
    assert [j.id for j in jobs.list([ids["alice"]])] == [waiting.id]
    with pytest.raises(JobNotFoundError):
        jobs.get(done.id)
