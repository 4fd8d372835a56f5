"""The cells of the matrix (``test_team_security.py`` runs them) for runs and sessions: a
caller's runs are their own (anyone else's is answered as a run that does not exist), a run
attaches only versions its caller may read, and a version's lineage is seen by those who may
read the version, without the command, log or other datastores of the runs in it. No tests
here (see ``test_team_security_cells_datastores.py`` for why).
"""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.team_matrix import (
    MEMBER,
    OWNER,
    VERSION,
    Cell,
    Probe,
    World,
    hex_id,
    registrar,
)

CELLS: dict[tuple[str, str], Cell] = {}
cell = registrar(CELLS)
RUNS = "/v1/runs"
RUN = "/v1/runs/{run_id}"
GHOST_RUN = 2**31 - 1


def _body(ref: str, version: int = 1) -> dict[str, Any]:
    return {
        "kind": "run",
        "name": f"matrix-{hex_id()}",
        "command": ["python", f"secret-arg-{hex_id()}"],
        "executor": "local",
        "host": "matrix",
        "pid": 7,
        "log_path": f"/tmp/log-{hex_id()}",
        "datastores": [{"datastore": ref, "version": version, "path": "/datastores/x/1"}],
    }


def _own_run(w: World, key: str, p: Probe, *, secret_name: bool = True) -> dict[str, Any]:
    """A live run of the holder of ``key`` attaching ``p``'s datastore; its command and log
    (and name, unless it is to show in a lineage) become secrets of the holder."""
    body = _body(f"{p.owner}/{p.name}")
    r = w.call("POST", RUNS, key, body)
    w.expect(r, 201)
    owner = next(name for name, k in _people(w).items() if k == key)
    # the name of a run shows in the lineage of what it attached, to all who read that
    secret_name = secret_name and p.owner != w.team
    words = {body["command"][1], body["log_path"]} | ({body["name"]} if secret_name else set())
    w.secrets.setdefault(owner, set()).update(words)
    return dict(r.json())


def _people(w: World) -> dict[str, str]:
    return {w.owner.name: w.owner.key, w.member.name: w.member.key, w.other.name: w.other.key}


def _target(w: World, who: str, p: Probe) -> dict[str, Any]:
    """The run a cell asks about: the caller's own (owner, member), else the owner's."""
    return _own_run(w, p.key if who in (OWNER, MEMBER) else w.owner.key, p)


def _end(w: World, run: dict[str, Any]) -> None:
    key = _people(w)[run["user"]]
    w.expect(w.call("PATCH", RUN.format(run_id=run["id"]), key, {"status": "succeeded"}), 200)


def _as_if_missing(
    w: World, r: Any, method: str, path: str, p: Probe, run_id: int, body: Any = None
) -> None:
    """Someone else's run reads exactly as one that does not exist."""
    ghost = w.call(method, path.format(run_id=GHOST_RUN), p.key, body)
    want = (ghost.status_code, re.sub(rf"\b{GHOST_RUN}\b", "{ID}", ghost.text))
    assert (r.status_code, re.sub(rf"\b{run_id}\b", "{ID}", r.text)) == want  # not in 404


def _run_route(method: str, path: str, body: Any = None) -> Cell:
    def run_cell(w: World, who: str, status: int) -> None:
        for p in w.probes(who):
            target = _target(w, who, p)
            r = w.call(method, path.format(run_id=target["id"]), p.key, body)
            w.expect(r, status, f"({who})")
            if status == 200 and method == "GET":
                assert r.json()["id"] == target["id"]
            if status == 404:
                _as_if_missing(w, r, method, path, p, target["id"], body)
            after = w.call("GET", RUN.format(run_id=target["id"]), _people(w)[target["user"]])
            if status != 200:
                assert after.json() == target, "a refused request changed the run"
            _end(w, target)

    return run_cell


cell("GET", RUN)(_run_route("GET", RUN))
cell("PATCH", RUN)(_run_route("PATCH", RUN, {"status": "running", "exit_code": 0}))


@cell("POST", RUNS)
def _start(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        r = w.call("POST", RUNS, p.key, _body(f"{p.owner}/{p.name}"))
        w.expect(r, status, f"({who})")
        if status == 201:
            assert r.json()["datastores"][0]["version"] == 1
            _end(w, r.json())
        elif status == 404:
            assert r.json()["code"] == "datastore_not_found"
            ghost = w.call("POST", RUNS, p.key, _body(f"{p.owner}/ghost-{hex_id()}"))
            assert ghost.json()["detail"].split("'")[0] == r.json()["detail"].split("'")[0]


@cell("GET", RUNS)
def _list(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        mine = _own_run(w, w.owner.key, Probe(w.owner.key, w.owner.name, w.personal))
        r = w.call("GET", RUNS, p.key)
        w.expect(r, status, f"({who})")
        if status == 200:
            ids = {run["id"] for run in r.json()}
            assert (mine["id"] in ids) == (p.key == w.owner.key)
        _end(w, mine)


@cell("POST", RUN + "/attach")
def _attach(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        target = _target(w, who, p)
        path = RUN.format(run_id=target["id"]) + "/attach"
        body = [{"datastore": f"{p.owner}/{p.name}", "version": 1, "path": "/datastores/y/1"}]
        r = w.call("POST", path, p.key, body)
        w.expect(r, status, f"({who})")
        if status == 200:
            assert len(r.json()["datastores"]) == 2
        if status == 404:
            _as_if_missing(w, r, "POST", RUN + "/attach", p, target["id"], body)
        _end(w, target)


@cell("POST", RUN + "/detach")
def _detach(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        target = _target(w, who, p)
        path = RUN.format(run_id=target["id"]) + "/detach"
        body = {"datastore": f"{p.owner}/{p.name}", "version": 1}
        r = w.call("POST", path, p.key, body)
        w.expect(r, status, f"({who})")
        if status == 200:
            assert r.json()["datastores"][0]["detached_at"]
        if status == 404:
            _as_if_missing(w, r, "POST", RUN + "/detach", p, target["id"], body)
        _end(w, target)


@cell("GET", VERSION + "/runs")
def _lineage(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        run = _own_run(w, w.owner.key, p, secret_name=False)
        path = VERSION.format(owner=p.owner, name=p.name, number=1) + "/runs"
        r = w.call("GET", path, p.key)
        w.expect(r, status, f"({who})")
        if status == 200:
            (seen,) = [x for x in r.json() if x["id"] == run["id"]]
            assert seen["command"] == [] and seen["log_path"] == "" and seen["details"] == []
            assert seen["name"] == run["name"] and seen["status"] == "queued"
        elif status == 404:
            w.assert_as_if_missing(r, p, "GET", VERSION + "/runs", number=1)
        _end(w, run)


@cell("POST", RUN + "/key")
def _run_key(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        target = _target(w, who, p)
        path = RUN.format(run_id=target["id"]) + "/key"
        r = w.call("POST", path, p.key, {"expires_in": 600})
        w.expect(r, status, f"({who})")
        if status == 201:
            key = r.json()["key"]
            w.keys.add(key)
            assert w.call("GET", "/v1/whoami", key).json()["username"] == target["user"]
            listed = w.call("GET", "/v1/runs", key)  # it reads the run's versions only
            w.expect(listed, 401)
        elif status == 404:
            _as_if_missing(w, r, "POST", RUN + "/key", p, target["id"], {"expires_in": 600})
        _end(w, target)
