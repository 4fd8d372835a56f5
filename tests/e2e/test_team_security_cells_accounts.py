"""The cells of the matrix (``test_team_security.py`` runs them) for the routes about the caller
and their keys, the public ones, and the signed object URLs (``/v1/objects/TOKEN``): these are
capabilities, whoever holds one may use it, whatever key they send, only for its object and
method. No tests here: ``test_team_security.py`` runs every cell on one server per database, so
that its last test can search that server's log for every key the matrix made.
"""

from __future__ import annotations

import uuid

from tests.e2e.team_matrix import (
    DISABLED,
    MEMBER,
    OTHER,
    OWNER,
    TOKEN,
    Cell,
    World,
    manifest_key,
    registrar,
)

CELLS: dict[tuple[str, str], Cell] = {}
cell = registrar(CELLS)


def _public(method: str, path: str) -> Cell:
    def run(w: World, who: str, status: int) -> None:
        r = w.call(method, path, w.key_of(who))
        w.expect(r, status)
        if method == "HEAD":
            assert not r.content

    return run


for _method, _path in [
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/v1/health"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]:
    CELLS[_method, _path] = _public(_method, _path)


@cell("GET", "/v1/whoami")
def _whoami(w: World, who: str, status: int) -> None:
    r = w.call("GET", "/v1/whoami", w.key_of(who))
    w.expect(r, status)
    if status == 200:
        assert r.json()["username"] == w.person(who).name


@cell("GET", "/v1/keys")
def _list_keys(w: World, who: str, status: int) -> None:
    r = w.call("GET", "/v1/keys", w.key_of(who))
    w.expect(r, status)
    if status == 200:
        mine = {k.id for k in w.accounts.keys(w.person(who).name)}
        assert {k["id"] for k in r.json()} == mine
        assert all("api_key" not in k for k in r.json())


@cell("POST", "/v1/keys")
def _create_key(w: World, who: str, status: int) -> None:
    user = w.disabled.name if who == DISABLED else w.owner.name  # whose key it is
    if status == 201:
        user = w.person(who).name
    before = len(w.accounts.keys(user))
    r = w.call("POST", "/v1/keys", w.key_of(who), {"expires_in": 3600})
    w.expect(r, status)
    if status == 201:
        new = r.json()["api_key"]  # shown here, and nowhere else from now on
        w.keys.add(new)
        assert w.call("GET", "/v1/whoami", new).json()["username"] == user
    assert len(w.accounts.keys(user)) == before + (status == 201)


@cell("DELETE", "/v1/keys/{key_id}")
def _revoke_key(w: World, who: str, status: int) -> None:
    def spare(user: str) -> str:
        key, info = w.accounts.create_key(user)
        w.keys.add(key)
        return str(info.id)

    def revoked(user: str, key_id: str) -> bool:
        return next(k for k in w.accounts.keys(user) if k.id == key_id).revoked_at is not None

    if status == 204:
        user = w.person(who).name
        key_id = spare(user)
        w.expect(w.call("DELETE", f"/v1/keys/{key_id}", w.key_of(who)), 204)
        assert revoked(user, key_id)
        return
    askers = [w.other.key, w.member.key] if who == OTHER else [w.key_of(who)]
    for key in askers:  # the owner's key, by someone else
        key_id = spare(w.owner.name)
        r = w.call("DELETE", f"/v1/keys/{key_id}", key)
        w.expect(r, status)
        if status == 404:  # as a key that does not exist
            missing = uuid.uuid4().hex[:12]
            again = w.call("DELETE", f"/v1/keys/{missing}", key)
            assert again.text.replace(missing, "ID") == r.text.replace(key_id, "ID")
        assert not revoked(w.owner.name, key_id)


@cell("GET", "/v1/datastores")
def _list_datastores(w: World, who: str, status: int) -> None:
    r = w.call("GET", "/v1/datastores", w.key_of(who))
    w.expect(r, status)
    if status != 200:
        return
    rows = {(row["owner"], row["datastore"]["name"]) for row in r.json()}
    owners = {owner for owner, _ in rows}
    mine = {
        OWNER: {(w.owner.name, w.personal), (w.team, w.team_ds)},
        MEMBER: {(w.team, w.team_ds)},
        OTHER: {(w.other.name, w.others)},
    }[who]
    assert mine <= rows and owners <= w.sees(w.key_of(who)), rows


def _signed(method: str) -> Cell:
    """A URL the owner was given, used by each kind of caller (with their key, if any)."""

    def run(w: World, who: str, status: int) -> None:
        owner = w.owner
        issued = w.sees(owner.key)
        if method == "PUT":
            pack = uuid.uuid4().hex
            key = f"packs/{pack[:2]}/{pack}"
            url = w.object_url(owner.key, owner.name, "PUT", key)
            data = f"{who} {pack}".encode()
            r = w.call("PUT", url, w.key_of(who), content=data, sees=issued)
            w.expect(r, status)
            # to its key, once: the same URL never replaces it
            assert (w.storage / owner.name / key).read_bytes() == data
            again = w.call("PUT", url, w.key_of(who), content=b"other bytes", sees=issued)
            w.expect(again, 412)
            assert (w.storage / owner.name / key).read_bytes() == data
            return
        key = manifest_key(w.manifests[owner.name, w.personal])
        url = w.object_url(owner.key, owner.name, "GET", key)
        r = w.call(method, url, w.key_of(who), sees=issued)
        w.expect(r, status)
        stored = (w.storage / owner.name / key).read_bytes()
        if method == "GET":
            assert r.content == stored
        else:
            assert int(r.headers["content-length"]) == len(stored) and not r.content

    return run


for _method in ("GET", "HEAD", "PUT"):
    CELLS[_method, TOKEN] = _signed(_method)
