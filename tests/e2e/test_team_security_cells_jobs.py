"""The cells of the matrix (``test_team_security.py`` runs them) for jobs: a caller sees,
shows and cancels the jobs of their own owners (themself and their teams); anyone else's job
is answered as a job that does not exist, and a refused request changes nothing. No tests
here (see ``test_team_security_cells_datastores.py`` for why).

The jobs are of a kind no worker runs, put in the queue directly, so each stays queued (and
cancellable) for as long as a cell needs it.
"""

from __future__ import annotations

import re
from typing import Any

from grid.catalog import Catalog
from grid.catalog.jobs import JobQueue
from tests.e2e.team_matrix import MEMBER, OWNER, Cell, Probe, World, hex_id, registrar

CELLS: dict[tuple[str, str], Cell] = {}
cell = registrar(CELLS)
JOBS = "/v1/jobs"
JOB = "/v1/jobs/{job_id}"
GHOST_JOB = 2**31 - 1


def _queued(w: World, p: Probe) -> dict[str, Any]:
    """A queued job of ``p``'s owner, with a word in it only that owner's people may see."""
    secret = f"job-secret-{hex_id()}"
    catalog = Catalog(w.database, owner=None)
    try:
        owner_id = catalog.owner_id_of(p.owner)
        assert owner_id is not None
        job = JobQueue(catalog).enqueue(owner_id, "matrix", {"name": p.name, "source": secret})
    finally:
        catalog.close()
    w.secrets.setdefault(p.owner, set()).add(secret)
    return {"id": job.id, "owner": p.owner}


def _state(w: World, job_id: int) -> str:
    catalog = Catalog(w.database, owner=None)
    try:
        return JobQueue(catalog).get(job_id).state
    finally:
        catalog.close()


def _as_if_missing(w: World, r: Any, method: str, path: str, p: Probe, job_id: int) -> None:
    ghost = w.call(method, path.format(job_id=GHOST_JOB), p.key)
    want = (ghost.status_code, re.sub(rf"\b{GHOST_JOB}\b", "{ID}", ghost.text))
    assert (r.status_code, re.sub(rf"\b{job_id}\b", "{ID}", r.text)) == want


@cell("GET", JOBS)
def _list(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        job = _queued(w, p)
        r = w.call("GET", JOBS, p.key)
        w.expect(r, status, f"({who})")
        if status == 200:
            ids = {j["id"] for j in r.json()}
            assert (job["id"] in ids) == (who in (OWNER, MEMBER))


def _job_route(method: str, path: str) -> Cell:
    def job_cell(w: World, who: str, status: int) -> None:
        for p in w.probes(who):
            job = _queued(w, p)
            r = w.call(method, path.format(job_id=job["id"]), p.key)
            w.expect(r, status, f"({who})")
            if status == 200:
                assert r.json()["id"] == job["id"] and r.json()["owner"] == p.owner
            if status == 404:
                assert r.json()["code"] == "job_not_found"
                _as_if_missing(w, r, method, path, p, job["id"])
            cancelled = status == 200 and method == "POST"
            assert _state(w, job["id"]) == ("cancelled" if cancelled else "queued")

    return job_cell


cell("GET", JOB)(_job_route("GET", JOB))
cell("POST", JOB + "/cancel")(_job_route("POST", JOB + "/cancel"))
