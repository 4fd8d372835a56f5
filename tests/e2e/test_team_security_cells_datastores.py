"""The cells of the matrix (``test_team_security.py`` runs them) for a datastore's routes (its
versions, their leases and commits, imports) and its owner's (object URLs, packs, gc). Someone
else's datastore or owner is answered 404 with the very body one that does not exist gets, and
nothing changes. No tests here: ``test_team_security.py`` runs every cell on one server per
database, so that its last test can search that server's log for every key the matrix made.
"""

from __future__ import annotations

import json
import uuid

from tests.e2e.team_matrix import (
    CHECK,
    DS,
    GC,
    HOLDER,
    MATRIX_SOURCE,
    OBJECTS,
    PACKS,
    PROBLEM,
    USAGE,
    VERSION,
    Cell,
    World,
    hex_id,
    manifest_key,
    registrar,
)

CELLS: dict[tuple[str, str], Cell] = {}
cell = registrar(CELLS)


@cell("GET", DS + "/versions")
def _versions(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        path = DS.format(owner=p.owner, name=p.name) + "/versions"
        r = w.call("GET", path, p.key)
        w.expect(r, status, f"({who})")
        if status == 200:
            assert [v["number"] for v in r.json()][:1] == [1]
            assert r.json()[0]["manifest_id"] == w.manifests[p.owner, p.name]
        elif status == 404:
            w.assert_as_if_missing(r, p, "GET", DS + "/versions")


@cell("GET", VERSION)
def _version(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        r = w.call("GET", VERSION.format(owner=p.owner, name=p.name, number=1), p.key)
        w.expect(r, status, f"({who})")
        if status == 200:
            assert r.json()["manifest_id"] == w.manifests[p.owner, p.name]
        elif status == 404:
            w.assert_as_if_missing(r, p, "GET", VERSION, number=1)


@cell("POST", DS + "/versions")
def _new_version(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        before = w.versions(p.owner, p.name)
        body = {**HOLDER, "source": MATRIX_SOURCE, "manifest_id": uuid.uuid4().hex}
        path = DS.format(owner=p.owner, name=p.name) + "/versions"
        r = w.call("POST", path, p.key, body)
        w.expect(r, status, f"({who})")
        if status == 201:
            assert r.json()["status"] == "uploading"
            w.discard(p.owner, p.name, r.json()["number"])
            continue
        assert w.versions(p.owner, p.name) == before
        if status == 404:
            w.assert_as_if_missing(r, p, "POST", DS + "/versions", body, own=False)


@cell("POST", VERSION + "/takeover")
def _takeover(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        n = w.pending(p.owner, p.name)
        body = {
            "source": MATRIX_SOURCE,
            "manifest_id": uuid.uuid4().hex,
            "host": "matrix",
            "pid": 8,
            "expect_host": HOLDER["host"],
            "expect_pid": HOLDER["pid"],
        }
        r = w.call(
            "POST", VERSION.format(owner=p.owner, name=p.name, number=n) + "/takeover", p.key, body
        )
        w.expect(r, status, f"({who})")
        v = w.version(p.owner, p.name, n)
        assert v is not None and v["pid"] == (8 if status == 200 else HOLDER["pid"])
        if status == 404:
            w.assert_as_if_missing(r, p, "POST", VERSION + "/takeover", body, own=False, number=n)
        w.discard(p.owner, p.name, n)


@cell("POST", VERSION + "/renew")
def _renew(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        n = w.pending(p.owner, p.name)
        before = w.version(p.owner, p.name, n)
        body = {**HOLDER, "lease_seconds": 3600}
        r = w.call(
            "POST", VERSION.format(owner=p.owner, name=p.name, number=n) + "/renew", p.key, body
        )
        w.expect(r, status, f"({who})")
        after = w.version(p.owner, p.name, n)
        assert before is not None and after is not None
        if status == 200:
            assert r.json() == {"held": True}
            assert after["lease_expires_at"] > before["lease_expires_at"]
        else:
            assert after["lease_expires_at"] == before["lease_expires_at"]
        if status == 404:
            w.assert_as_if_missing(r, p, "POST", VERSION + "/renew", body, own=False, number=n)
        w.discard(p.owner, p.name, n)


@cell("PATCH", VERSION)
def _change(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        n = w.pending(p.owner, p.name)
        body = {"progress_done": 3, "progress_total": 9}
        r = w.call("PATCH", VERSION.format(owner=p.owner, name=p.name, number=n), p.key, body)
        w.expect(r, status, f"({who})")
        v = w.version(p.owner, p.name, n)
        assert v is not None and v["progress_done"] == (3 if status == 204 else None)
        if status == 404:
            w.assert_as_if_missing(r, p, "PATCH", VERSION, body, number=n)
        w.discard(p.owner, p.name, n)


@cell("POST", VERSION + "/commit")
def _commit(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        n = w.pending(p.owner, p.name)
        # let in, a create that does not hold it is refused; refused, even its holder is
        body = {"host": "matrix", "pid": 99} if status == 409 else dict(HOLDER)
        r = w.call(
            "POST", VERSION.format(owner=p.owner, name=p.name, number=n) + "/commit", p.key, body
        )
        w.expect(r, status, f"({who})")
        v = w.version(p.owner, p.name, n)
        assert v is not None and v["status"] == "uploading", v  # neither failed nor published
        if status == 404:
            w.assert_as_if_missing(r, p, "POST", VERSION + "/commit", body, number=n)
        w.discard(p.owner, p.name, n)


@cell("DELETE", VERSION)
def _delete_version(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        n = w.pending(p.owner, p.name)
        path = VERSION.format(owner=p.owner, name=p.name, number=n) + "?discard=true"
        r = w.call("DELETE", path, p.key)
        w.expect(r, status, f"({who})")
        if status == 204:
            assert w.version(p.owner, p.name, n) is None
            continue
        assert w.version(p.owner, p.name, n) is not None
        if status == 404:
            w.assert_as_if_missing(r, p, "DELETE", VERSION + "?discard=true", number=n)
        # nor the finished version
        r = w.call("DELETE", VERSION.format(owner=p.owner, name=p.name, number=1), p.key)
        w.expect(r, status, f"({who})")
        assert w.version(p.owner, p.name, 1) is not None
        if status == 404:
            w.assert_as_if_missing(r, p, "DELETE", VERSION, number=1)
        w.discard(p.owner, p.name, n)


@cell("DELETE", DS)
def _delete_datastore(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        if status == 200:  # a datastore of the same owner made for this
            scratch = f"scratch-{hex_id()}"
            w.pending(p.owner, scratch)
            r = w.call("DELETE", DS.format(owner=p.owner, name=scratch), p.key)
            w.expect(r, 200, f"({who})")
            assert [v["number"] for v in r.json()] == [1]
            gone = w.call("GET", DS.format(owner=p.owner, name=scratch) + "/versions", p.key)
            w.expect(gone, 404)
            continue
        before = w.versions(p.owner, p.name)
        r = w.call("DELETE", DS.format(owner=p.owner, name=p.name), p.key)
        w.expect(r, status, f"({who})")
        assert w.versions(p.owner, p.name) == before
        if status == 404:
            w.assert_as_if_missing(r, p, "DELETE", DS)


@cell("POST", DS + "/imports")
def _import_cell(w: World, who: str, status: int) -> None:
    body = {"source": "http://127.0.0.1:9/private.zip"}  # refused: the server's own network
    for p in w.probes(who):
        if status == 200:  # a datastore of the same owner made for this
            scratch = f"scratch-{hex_id()}"
            r = w.call("POST", DS.format(owner=p.owner, name=scratch) + "/imports", p.key, body)
            w.expect(r, 200, f"({who})")
            last = json.loads(r.text.strip().splitlines()[-1])
            assert set(last) <= {"version", "error"} and last, r.text
            if "error" in last:
                assert set(last["error"]) == PROBLEM, last
            w.call("DELETE", DS.format(owner=p.owner, name=scratch), w.owner.key)
            continue
        before = w.versions(p.owner, p.name)
        r = w.call("POST", DS.format(owner=p.owner, name=p.name) + "/imports", p.key, body)
        w.expect(r, status, f"({who})")
        assert w.versions(p.owner, p.name) == before
        if status == 404:
            w.assert_as_if_missing(r, p, "POST", DS + "/imports", body, own=False)


@cell("POST", OBJECTS)
def _object_urls(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        key = manifest_key(w.manifests[p.owner, p.name])
        for method in ("GET", "PUT") if status != 200 else ("GET",):
            body = {"method": method, "keys": [key]}
            r = w.call("POST", OBJECTS.format(owner=p.owner), p.key, body)
            w.expect(r, status, f"({who})")
            if status == 200:
                got = w.call("GET", r.json()["urls"][key], None, sees=w.sees(p.key))
                w.expect(got, 200)
                path = w.storage / p.owner / key
                assert got.content == path.read_bytes()
            elif status == 404:
                w.assert_as_if_missing(r, p, "POST", OBJECTS, body, own=False)


@cell("GET", PACKS)
def _packs(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        r = w.call("GET", PACKS.format(owner=p.owner), p.key)
        w.expect(r, status, f"({who})")
        if status == 200:
            assert {x["pack_id"] for x in r.json()["packs"]} <= w.secrets[p.owner]
            assert r.json()["packs"]
        elif status == 404:
            w.assert_as_if_missing(r, p, "GET", PACKS, own=False)


@cell("POST", CHECK)
def _check(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        packs = w.call("GET", PACKS.format(owner=p.owner), w.owner.key).json()["packs"]
        body = {"pack_ids": [x["pack_id"] for x in packs]}
        r = w.call("POST", CHECK.format(owner=p.owner), p.key, body)
        w.expect(r, status, f"({who})")
        if status == 200:
            assert r.json()["checked"] == len(packs)  # already checked: nothing to do
        elif status == 404:
            w.assert_as_if_missing(r, p, "POST", CHECK, body, own=False)


@cell("POST", GC)
def _gc(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        before = w.call("GET", PACKS.format(owner=p.owner), w.owner.key).json()["packs"]
        body = {"dry_run": True} if status == 200 else {"dry_run": False, "grace": 0}
        r = w.call("POST", GC.format(owner=p.owner), p.key, body)
        w.expect(r, status, f"({who})")
        if status == 200:
            assert r.json()["packs_deleted"] == 0 and r.json()["live_packs"] >= 1, r.json()
        after = w.call("GET", PACKS.format(owner=p.owner), w.owner.key).json()["packs"]
        assert after == before
        for pack in after:
            pack_id = pack["pack_id"]
            assert (w.storage / p.owner / "packs" / pack_id[:2] / pack_id).exists()
        if status == 404:
            w.assert_as_if_missing(r, p, "POST", GC, body, own=False)


@cell("GET", USAGE)
def _usage(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        r = w.call("GET", USAGE.format(owner=p.owner), p.key)
        w.expect(r, status, f"({who})")
        if status == 200:  # the owner's own datastores, and only theirs
            names = {d["name"] for d in r.json()["datastores"]}
            assert p.name in names, r.json()
            mine = w.call("GET", "/v1/datastores", p.key).json()
            assert names <= {d["datastore"]["name"] for d in mine if d["owner"] == p.owner}
            assert r.json()["stored_bytes"] >= r.json()["referenced_bytes"] > 0
        elif status == 404:
            w.assert_as_if_missing(r, p, "GET", USAGE, own=False)
