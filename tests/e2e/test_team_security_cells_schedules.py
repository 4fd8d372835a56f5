"""The cells of the matrix (``test_team_security.py`` runs them) for the schedules a server
keeps: set and removed by those who may write the datastore, listed for the caller's owners;
anyone else is answered as for a datastore that does not exist, and a refused request
changes nothing. No tests here (see ``test_team_security_cells_datastores.py`` for why).

The world's server reads S3 prefixes of ``matrix-bucket`` through an endpoint on a closed
loopback port, so a turn that fires fails there and reaches nothing outside.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.team_matrix import DS, MEMBER, OWNER, Cell, Probe, World, hex_id, registrar

CELLS: dict[tuple[str, str], Cell] = {}
cell = registrar(CELLS)
SCHEDULE = DS + "/schedule"
SCHEDULES = "/v1/schedules"


def _body() -> dict[str, Any]:
    return {"source": f"s3://matrix-bucket/{hex_id()}/", "every_seconds": 3600}


def _rightful(w: World, p: Probe) -> str:
    """The key of one who may write ``p``'s datastore."""
    return w.owner.key if p.owner == w.owner.name else w.member.key


def _listed(w: World, p: Probe) -> list[dict[str, Any]]:
    r = w.call("GET", SCHEDULES, _rightful(w, p))
    return [s for s in r.json() if s["owner"] == p.owner and s["name"] == p.name]


@cell("PUT", SCHEDULE)
def _set(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        before = _listed(w, p)
        body = _body()
        r = w.call("PUT", SCHEDULE.format(owner=p.owner, name=p.name), p.key, body)
        w.expect(r, status, f"({who})")
        after = _listed(w, p)
        if status == 200:
            assert r.json()["source"] == body["source"] and r.json()["owner"] == p.owner
            assert [s["source"] for s in after] == [body["source"]]
            w.expect(w.call("DELETE", SCHEDULE.format(owner=p.owner, name=p.name), p.key), 204)
        else:
            assert after == before, "a refused request changed the schedules"
            if status == 404:
                w.assert_as_if_missing(r, p, "PUT", SCHEDULE, _body(), own=False)


@cell("DELETE", SCHEDULE)
def _remove(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        path = SCHEDULE.format(owner=p.owner, name=p.name)
        w.expect(w.call("PUT", path, _rightful(w, p), _body()), 200)
        r = w.call("DELETE", path, p.key)
        w.expect(r, status, f"({who})")
        assert (_listed(w, p) == []) == (status == 204)
        if status != 204:
            w.expect(w.call("DELETE", path, _rightful(w, p)), 204)


@cell("GET", SCHEDULES)
def _list(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        path = SCHEDULE.format(owner=p.owner, name=p.name)
        w.expect(w.call("PUT", path, _rightful(w, p), _body()), 200)
        r = w.call("GET", SCHEDULES, p.key)
        w.expect(r, status, f"({who})")
        if status == 200:
            seen = {(s["owner"], s["name"]) for s in r.json()}
            assert ((p.owner, p.name) in seen) == (who in (OWNER, MEMBER))
        w.expect(w.call("DELETE", path, _rightful(w, p)), 204)
