"""Team mode's authorisation matrix: every route of the API × every kind of caller, on real
`grid server` processes (the session's SQLite server, and one on PostgreSQL), folder storage.

The callers: the owner of a datastore (a user, on their own); a member of the team that owns
one; another user (and a teammate asking for a teammate's own datastore), who is answered 404
with the very body a datastore that does not exist gets, never 403; no key, a revoked key, an
expired key and a disabled user's key, answered 401 by every route but the public ones. Signed
object URLs (``/v1/objects/TOKEN``) are capabilities: whoever holds one may use it, whatever
key they send, only for its object and method, and a PUT URL only ever points into the asking
user's staging area. Every response is searched for what its caller must not learn (other
owners' datastore names, sources, manifest and pack ids, sizes) and for every API key but the
one that response creates; the server's log, for every key.

``EXPECTED`` is the table; ``test_the_matrix_covers_every_route`` fails when the application
has a route without a row (or a row without a route). A server that fetches sources itself
(``.../imports``) on S3 storage is tried last: what it may read with its own credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.team import new_user, start_server, stop

OWNER, MEMBER, OTHER = "owner", "member", "other"
NO_KEY, REVOKED, EXPIRED, DISABLED = "no key", "revoked key", "expired key", "disabled user"
CALLERS = (OWNER, MEMBER, OTHER, NO_KEY, REVOKED, EXPIRED, DISABLED)
REFUSED = (NO_KEY, REVOKED, EXPIRED, DISABLED)


def _row(owner: int, member: int, other: int, refused: int = 401) -> dict[str, int]:
    """Expected statuses: the owner on their datastore, a member on their team's, another
    user (or teammate) on someone else's, then the four refused keys."""
    return {OWNER: owner, MEMBER: member, OTHER: other} | dict.fromkeys(REFUSED, refused)


PUBLIC = _row(200, 200, 200, 200)
DS = "/v1/datastores/{owner}/{name}"
VERSION = DS + "/versions/{number}"
OBJECTS = "/v1/owners/{owner}/objects"
PACKS = "/v1/owners/{owner}/packs"
GC = "/v1/owners/{owner}/gc"
TOKEN = "/v1/objects/{token}"

EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("HEAD", "/openapi.json"): PUBLIC,
    ("GET", "/v1/health"): PUBLIC,
    ("GET", "/v1/whoami"): _row(200, 200, 200),
    ("GET", "/v1/keys"): _row(200, 200, 200),
    ("POST", "/v1/keys"): _row(201, 201, 201),
    ("DELETE", "/v1/keys/{key_id}"): _row(204, 204, 404),  # another's key: not found
    ("GET", "/v1/datastores"): _row(200, 200, 200),  # each sees only their own owners'
    ("GET", DS + "/versions"): _row(200, 200, 404),
    ("POST", DS + "/versions"): _row(201, 201, 404),
    ("GET", VERSION): _row(200, 200, 404),
    ("POST", VERSION + "/takeover"): _row(200, 200, 404),
    ("POST", VERSION + "/renew"): _row(200, 200, 404),
    ("PATCH", VERSION): _row(204, 204, 404),
    # allowed in: a commit by a create that does not hold the version is a conflict (the
    # real commit runs in the data-plane test, through the client)
    ("POST", VERSION + "/commit"): _row(409, 409, 404),
    ("DELETE", VERSION): _row(204, 204, 404),
    ("DELETE", DS): _row(200, 200, 404),
    # let in: the import starts (and ends in an error line: the archive URL is private)
    ("POST", DS + "/imports"): _row(200, 200, 404),
    ("POST", OBJECTS): _row(200, 200, 404),
    ("GET", PACKS): _row(200, 200, 404),
    ("POST", GC): _row(200, 200, 404),  # let in: a dry run; refused: the harshest run
    # the signed URL is the capability: the key sent with it (if any) changes nothing
    ("GET", TOKEN): PUBLIC,
    ("HEAD", TOKEN): PUBLIC,
    ("PUT", TOKEN): PUBLIC,
}

# Cells that show a server bug: (route, caller) -> reason, each run as a strict xfail.
KNOWN_BUGS: dict[tuple[tuple[str, str], str], str] = {}

HOLDER = {"host": "matrix", "pid": 7}
MATRIX_SOURCE = "matrix-source"
EXPIRES_IN = 2.0
_PROBLEM = {"type", "title", "status", "detail", "code", "attrs"}


@dataclass(frozen=True)
class Person:
    name: str
    key: str


@dataclass(frozen=True)
class Probe:
    """One request's caller (``key``; None: no key) and target owner and datastore."""

    key: str | None
    owner: str
    name: str


def _hex() -> str:
    return uuid.uuid4().hex[:10]


def _secret_part(key: str) -> str:
    return key.split("_", 2)[2]


def _token_key(url: str) -> str:
    """The storage key a signed object URL names."""
    payload = url.rsplit("/", 1)[1].partition(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(payload))[0])


def _manifest_key(manifest_id: str) -> str:
    return f"manifests/{manifest_id[:2]}/{manifest_id}"


def _normal(r: httpx.Response, owner: str, name: str) -> tuple[int, str, Any]:
    """A response with the owner and datastore it was about replaced by placeholders."""
    text = r.text.replace(name, "{NAME}").replace(owner, "{OWNER}")
    return r.status_code, r.headers.get("content-type", ""), json.loads(text) if text else None


@dataclass
class World:
    """One server with its accounts and datastores, and the checks every response gets."""

    database: str
    url: str
    log: Path
    storage: Path
    team: str
    owner: Person  # owns ``personal``; in ``team``
    member: Person  # in ``team``
    other: Person  # owns ``others``; in no team
    disabled: Person  # in ``team``; disabled
    revoked: str  # a key of ``owner``, revoked
    expired: str  # a key of ``owner``, expired
    http: httpx.Client
    accounts: Any
    personal: str = ""
    team_ds: str = ""
    others: str = ""
    manifests: dict[tuple[str, str], str] = field(default_factory=dict)
    secrets: dict[str, set[str]] = field(default_factory=dict)  # owner -> words
    sizes: dict[str, set[int]] = field(default_factory=dict)  # owner -> numbers
    keys: set[str] = field(default_factory=set)  # every key made so far
    refused_body: Any = None
    responses: int = 0

    # -- callers ---------------------------------------------------------------------------
    def key_of(self, who: str) -> str | None:
        return {
            OWNER: self.owner.key,
            MEMBER: self.member.key,
            OTHER: self.other.key,
            NO_KEY: None,
            REVOKED: self.revoked,
            EXPIRED: self.expired,
            DISABLED: self.disabled.key,
        }[who]

    def person(self, who: str) -> Person:
        return {OWNER: self.owner, MEMBER: self.member, OTHER: self.other}[who]

    def sees(self, key: str | None) -> set[str]:
        """The owners whose datastores the holder of ``key`` may learn about."""
        return {
            self.owner.key: {self.owner.name, self.team},
            self.member.key: {self.member.name, self.team},
            self.other.key: {self.other.name},
        }.get(key or "", set())

    def probes(self, who: str) -> list[Probe]:
        """Who asks about which datastore, for a column of the matrix."""
        mine = Probe(self.owner.key, self.owner.name, self.personal)
        if who == OWNER:
            return [mine]
        if who == MEMBER:
            return [Probe(self.member.key, self.team, self.team_ds)]
        if who == OTHER:  # a stranger on a user's and a team's; a teammate on a teammate's
            return [
                Probe(self.other.key, self.owner.name, self.personal),
                Probe(self.other.key, self.team, self.team_ds),
                Probe(self.member.key, self.owner.name, self.personal),
            ]
        if who == DISABLED:  # a member of the team
            return [Probe(self.disabled.key, self.team, self.team_ds)]
        return [Probe(self.key_of(who), self.owner.name, self.personal)]  # the owner's keys

    # -- requests --------------------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        key: str | None,
        body: Any = None,
        *,
        content: bytes | None = None,
        sees: set[str] | None = None,
    ) -> httpx.Response:
        """A request, checked for anything its caller must not learn (``sees``: the owners
        they may learn about; default from the key)."""
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        r = self.http.request(method, path, headers=headers, json=body, content=content)
        self.responses += 1
        asked = f"{path} {json.dumps(body)}"
        self.assert_nothing_leaks(r, asked, self.sees(key) if sees is None else sees)
        return r

    def assert_nothing_leaks(self, r: httpx.Response, asked: str, sees: set[str]) -> None:
        what = f"{r.request.method} {asked[:200]} -> {r.status_code}"
        text = r.content.decode(errors="replace")
        headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        for owner, words in self.secrets.items():
            if owner in sees:
                continue
            for word in words:  # what the caller sent may come back (a name in a 404)
                assert word in asked or word not in text, f"{what} shows {word!r} of {owner}"
            for n in self.sizes[owner]:
                pattern = rf"(?<![\w.]){n}(?![\w.])"  # not a part of a longer number
                assert not re.search(pattern, text), f"{what} shows size {n} of {owner}"
        for key in self.keys:
            secret = _secret_part(key)
            assert secret not in text and secret not in headers, f"{what} shows an API key"

    def expect(self, r: httpx.Response, status: int, what: str = "") -> None:
        where = f"{r.request.method} {r.request.url.path} {what}"
        assert r.status_code == status, f"{where}: {r.status_code} {r.text[:400]}"
        if status < 400:
            return
        assert r.headers["content-type"] == "application/problem+json", where
        if r.request.method == "HEAD":
            return
        problem = r.json()
        assert set(problem) == _PROBLEM and problem["status"] == status, problem
        if status == 404:
            assert problem["code"] in ("not_found", "datastore_not_found"), problem
        if status == 401 and r.request.url.path.startswith("/v1/objects/"):
            assert problem["code"] == "unauthorized", problem
        elif status == 401:  # one answer, whatever was wrong with the key
            assert r.headers["www-authenticate"] == "Bearer", where
            assert problem["code"] == "unauthorized", problem
            self.refused_body = self.refused_body or problem
            assert problem == self.refused_body, (where, problem)

    def assert_as_if_missing(
        self,
        r: httpx.Response,
        p: Probe,
        method: str,
        template: str,
        body: Any = None,
        *,
        own: bool = True,
        **params: Any,
    ) -> None:
        """``r`` (``p`` refused someone else's datastore or owner) reads exactly as the
        answer about one that does not exist: another name of the same owner, an owner that
        does not exist, and (``own``) a missing datastore of the caller's own."""
        ghost, nobody = f"ghost-{_hex()}", f"nobody-{_hex()}"
        targets = [(p.owner, ghost), (nobody, ghost)]
        if own:
            mine = next(o for o in self.sees(p.key) if o != self.team)
            targets.append((mine, ghost))
        want = _normal(r, p.owner, p.name)
        for owner, name in targets:
            path = template.format(owner=owner, name=name, **params)
            again = self.call(method, path, p.key, body)
            assert _normal(again, owner, name) == want, (path, again.text, r.text)
        # asking about a missing datastore made none
        listed = self.call("GET", "/v1/datastores", self.owner.key).json()
        assert ghost not in {row["datastore"]["name"] for row in listed}

    # -- the owner's view (the owner is in the team too) -----------------------------------
    def version(self, owner: str, name: str, number: int) -> dict[str, Any] | None:
        r = self.call("GET", VERSION.format(owner=owner, name=name, number=number), self.owner.key)
        if r.status_code == 404:
            return None
        self.expect(r, 200)
        return dict(r.json())

    def versions(self, owner: str, name: str) -> list[dict[str, Any]]:
        r = self.call("GET", DS.format(owner=owner, name=name) + "/versions", self.owner.key)
        self.expect(r, 200)
        return list(r.json())

    def pending(self, owner: str, name: str) -> int:
        """A new unfinished version, held by ``HOLDER``."""
        body = {
            **HOLDER,
            "source": MATRIX_SOURCE,
            "manifest_id": uuid.uuid4().hex,
            "lease_seconds": 600,
        }
        path = DS.format(owner=owner, name=name) + "/versions"
        r = self.call("POST", path, self.owner.key, body)
        self.expect(r, 201)
        return int(r.json()["number"])

    def discard(self, owner: str, name: str, number: int) -> None:
        path = VERSION.format(owner=owner, name=name, number=number) + "?discard=true"
        r = self.call("DELETE", path, self.owner.key)
        assert r.status_code in (204, 404), r.text

    def object_url(self, key: str, owner: str, method: str, object_key: str) -> str:
        r = self.call(
            "POST", OBJECTS.format(owner=owner), key, {"method": method, "keys": [object_key]}
        )
        self.expect(r, 200)
        return str(r.json()["urls"][object_key])


# -- the world: accounts and datastores, once per server ---------------------------------------
def _fresh_postgres(server: str) -> str:
    """A new empty database on the session's PostgreSQL cluster (as ``postgres_url``)."""
    import psycopg

    name = f"grid_{uuid.uuid4().hex[:12]}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def _make_datastore(w: World, who: Person, owner: str, tmp: Path, qualified: bool) -> str:
    """A one-version datastore of ``owner`` made by ``who`` with the real client, its words
    and figures added to the secrets of ``owner``; its name."""
    from grid.client.remote import RemoteClient

    name = f"ds-{_hex()}"
    source = tmp / f"src-{_hex()}"
    source.mkdir()
    size = os.getpid()
    while size == os.getpid():
        size = random.randrange(200_000, 600_000)
    (source / f"file-{_hex()}.bin").write_bytes(os.urandom(size))
    with RemoteClient(w.url, who.key, home=str(tmp / f"home-{who.name}")) as client:
        v = client.create(str(source), f"{owner}/{name}" if qualified else name)
    assert v.status == "succeeded" and v.size == size
    w.secrets.setdefault(owner, set()).update({name, v.source, source.name, v.manifest_id})
    w.sizes.setdefault(owner, set()).update({v.size, v.stored_bytes})
    w.manifests[owner, name] = v.manifest_id
    return name


def _learn_packs(w: World, owner: str, key: str) -> None:
    r = w.call("GET", PACKS.format(owner=owner), key)
    w.expect(r, 200)
    packs = r.json()["packs"]
    assert packs
    w.secrets[owner].update(p["pack_id"] for p in packs)


def _build(database: str, url: str, log: Path, storage: Path, tmp: Path) -> Iterator[World]:
    from grid.catalog import Accounts, Catalog
    from grid.server.run import Admin

    team = f"t{_hex()}"
    owner, member, other, disabled = (
        Person(*new_user(database, teams=teams)) for teams in ((team,), (team,), (), (team,))
    )
    people = (owner, member, other, disabled)
    catalog = Catalog(database, owner=None)
    accounts = Accounts(catalog)
    expired, _ = accounts.create_key(owner.name, expires_in=EXPIRES_IN)
    expires = time.monotonic() + EXPIRES_IN
    revoked, revoked_info = accounts.create_key(owner.name)
    http = httpx.Client(base_url=url, timeout=60)
    w = World(
        database, url, log, storage, team, owner, member, other, disabled,
        revoked, expired, http, accounts,
    )  # fmt: skip
    w.keys.update({p.key for p in people} | {revoked, expired})
    for key in (revoked, expired, w.disabled.key):  # each worked before it was refused
        w.expect(w.call("GET", "/v1/whoami", key), 200)
    accounts.revoke_key(owner.name, revoked_info.id)
    with Admin(database) as admin:
        admin.disable_user(w.disabled.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRID_FSYNC", "0")
        w.personal = _make_datastore(w, owner, owner.name, tmp, False)
        w.team_ds = _make_datastore(w, owner, team, tmp, True)
        w.others = _make_datastore(w, w.other, w.other.name, tmp, False)
    _learn_packs(w, owner.name, owner.key)
    _learn_packs(w, team, w.member.key)
    _learn_packs(w, w.other.name, w.other.key)
    time.sleep(max(0.0, expires - time.monotonic()) + 0.1)
    try:
        yield w
    finally:
        http.close()
        catalog.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def world(request, tmp_path_factory) -> Iterator[World]:
    """The session's server (SQLite), or a server of this module's on PostgreSQL."""
    tmp = tmp_path_factory.mktemp(f"security-{request.param}")
    if request.param == "sqlite":
        database, url = request.getfixturevalue("team_server")
        root = Path(database.removeprefix("sqlite:///")).parent
        yield from _build(database, url, root / "server.log", root / "objects", tmp)
        return
    database = _fresh_postgres(request.getfixturevalue("postgres_server"))
    with open(tmp / "server.log", "wb") as log:
        proc, url = start_server(database, str(tmp / "objects"), tmp / "home", log)
        try:
            yield from _build(database, url, tmp / "server.log", tmp / "objects", tmp)
        finally:
            stop(proc)


# -- the cells ---------------------------------------------------------------------------------
Cell = Callable[[World, str, int], None]
CELLS: dict[tuple[str, str], Cell] = {}


def cell(method: str, path: str) -> Callable[[Cell], Cell]:
    def register(fn: Cell) -> Cell:
        CELLS[method, path] = fn
        return fn

    return register


def _public(method: str, path: str) -> Cell:
    def run(w: World, who: str, status: int) -> None:
        r = w.call(method, path, w.key_of(who))
        w.expect(r, status)
        if method == "HEAD":
            assert not r.content

    return run


for _method, _path in [("GET", "/openapi.json"), ("HEAD", "/openapi.json"), ("GET", "/v1/health")]:
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
            scratch = f"scratch-{_hex()}"
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
            scratch = f"scratch-{_hex()}"
            r = w.call("POST", DS.format(owner=p.owner, name=scratch) + "/imports", p.key, body)
            w.expect(r, 200, f"({who})")
            last = json.loads(r.text.strip().splitlines()[-1])
            assert set(last) <= {"version", "error"} and last, r.text
            if "error" in last:
                assert set(last["error"]) == _PROBLEM, last
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
        key = _manifest_key(w.manifests[p.owner, p.name])
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
            # into the owner's own staging area, never where published packs are
            assert (w.storage / owner.name / "staging" / owner.name / key).read_bytes() == data
            assert not (w.storage / owner.name / key).exists()
            return
        key = _manifest_key(w.manifests[owner.name, w.personal])
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


def _cells() -> list[Any]:
    out = []
    for route in EXPECTED:
        for who in CALLERS:
            reason = KNOWN_BUGS.get((route, who))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(route, who, marks=marks, id=f"{' '.join(route)} | {who}"))
    return out


# -- the tests ---------------------------------------------------------------------------------
def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (method, path) of an application's routes, included routers too."""
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI's included router
        if inner is not None:
            yield from _routes(inner.routes, prefix + route.include_context.prefix)
            continue
        assert hasattr(route, "path") and hasattr(route, "methods"), f"unknown route {route!r}"
        for method in route.methods:
            yield method, prefix + route.path


def test_the_matrix_covers_every_route(world, tmp_path):
    """A route without a row (or a row without a route) fails here."""
    from grid.server.app import create_app

    app = create_app(f"sqlite:///{tmp_path / 'app.db'}", str(tmp_path / "objects"))
    routes = set(_routes(app.routes))
    assert routes == set(EXPECTED) == set(CELLS)
    r = world.call("GET", "/openapi.json", None)
    spec = r.json()["paths"]
    published = {(m.upper(), path) for path, ops in spec.items() for m in ops}
    assert published <= routes  # what the running server says it serves is in the table
    assert all(set(row) == set(CALLERS) for row in EXPECTED.values())


@pytest.mark.parametrize(("route", "who"), _cells())
def test_matrix(world, route, who):
    CELLS[route](world, who, EXPECTED[route][who])


def test_a_put_url_points_into_the_askers_staging_area(world: World, tmp_path, monkeypatch):
    """A member's upload for the team stays in their staging area: another member's GET URLs
    for the same key do not return its bytes until the uploader's commit has published it."""
    from grid.client.remote import RemoteClient
    from grid.client.remote_catalog import RemoteCatalog
    from grid.records import SUCCEEDED

    w, team, uploader, reader = world, world.team, world.member, world.owner
    staging = w.storage / team / "staging" / uploader.name

    def fetch(who: Person, key: str) -> httpx.Response:
        return w.call("GET", w.object_url(who.key, team, "GET", key), None, sees={team})

    # by hand: a PUT URL names the uploader's staging area, and the upload stays there
    pack = uuid.uuid4().hex
    key = f"packs/{pack[:2]}/{pack}"
    url = w.object_url(uploader.key, team, "PUT", key)
    assert _token_key(url) == f"{team}/staging/{uploader.name}/{key}"
    data = os.urandom(4096)
    w.expect(w.call("PUT", url, None, content=data, sees={team}), 200)
    assert (staging / key).read_bytes() == data
    assert not (w.storage / team / key).exists()
    got = fetch(reader, key)
    w.expect(got, 404)
    assert data not in got.content
    assert fetch(uploader, key).content == data  # a stopped create finds its own upload
    listed = w.call("GET", PACKS.format(owner=team), reader.key).json()["packs"]
    assert pack not in {p["pack_id"] for p in listed}

    # through the client: what it uploaded is checked just before its commit, and after
    seen: dict[str, bytes] = {}
    problems: list[str] = []
    commit = RemoteCatalog.set_status

    def checking(self, name, number, status, **kw):
        if status == SUCCEEDED:
            for path in (staging / "packs").glob("*/*"):
                staged = f"packs/{path.parent.name}/{path.name}"
                if staged == key:
                    continue
                seen[staged] = path.read_bytes()
                r = fetch(reader, staged)
                if r.status_code != 404 or seen[staged] in r.content:
                    problems.append(f"{staged} reached another member before the commit")
                if (w.storage / team / staged).exists():
                    problems.append(f"{staged} is published before the commit")
        return commit(self, name, number, status, **kw)

    monkeypatch.setattr(RemoteCatalog, "set_status", checking)
    monkeypatch.setenv("GRID_FSYNC", "0")
    source = tmp_path / "fresh"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(100_000))
    with RemoteClient(w.url, uploader.key, home=str(tmp_path / "home")) as client:
        v = client.create(str(source), f"{team}/fresh-{_hex()}")
    assert v.status == "succeeded" and seen and not problems, problems
    listed = w.call("GET", PACKS.format(owner=team), reader.key).json()["packs"]
    for staged, data in seen.items():
        r = fetch(reader, staged)
        w.expect(r, 200)
        assert r.content == data
        assert staged.rsplit("/", 1)[1] in {p["pack_id"] for p in listed}


def test_forged_tampered_or_misused_object_urls_are_refused(world):
    from grid.catalog import Catalog

    w, owner = world, world.owner
    mine = w.sees(owner.key)
    key = _manifest_key(w.manifests[owner.name, w.personal])
    stored = (w.storage / owner.name / key).read_bytes()
    get_url = w.object_url(owner.key, owner.name, "GET", key)
    pack = uuid.uuid4().hex
    put_url = w.object_url(owner.key, owner.name, "PUT", f"packs/{pack[:2]}/{pack}")
    payload, _, mac = get_url.rsplit("/", 1)[1].partition(".")

    def flip(text: str, i: int) -> str:
        return text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1 :]

    def encode(value: list[Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

    catalog = Catalog(w.database, owner=None)
    try:
        secret = catalog.signing_secret().encode()
    finally:
        catalog.close()

    def signed(value: list[Any]) -> str:
        body = encode(value)
        return f"{body}.{hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()}"

    real, method, expires = json.loads(base64.urlsafe_b64decode(payload))
    assert method == "GET" and real == f"{owner.name}/{key}"
    refused = {
        "payload flipped": ("GET", f"{flip(payload, len(payload) // 2)}.{mac}"),
        "mac flipped": ("GET", f"{payload}.{flip(mac, 5)}"),
        "method swapped": ("PUT", f"{encode([real, 'PUT', expires])}.{mac}"),
        "other object": ("GET", f"{encode([flip(real, len(real) - 1), 'GET', expires])}.{mac}"),
        "no mac": ("GET", payload),
        "garbage": ("GET", "let-me-in"),
        "GET URL for PUT": ("PUT", f"{payload}.{mac}"),
        "PUT URL for GET": ("GET", put_url.rsplit("/", 1)[1]),
        "PUT URL for HEAD": ("HEAD", put_url.rsplit("/", 1)[1]),
        "expired": ("GET", signed([real, "GET", int(time.time()) - 5])),
        "outside the store": ("GET", signed(["../../etc/passwd", "GET", expires])),
    }
    for what, (method, token) in refused.items():
        r = w.call(method, f"/v1/objects/{token}", owner.key, content=b"x" * 10, sees=set())
        w.expect(r, 401, what)
    assert (w.storage / owner.name / key).read_bytes() == stored  # the PUT wrote nothing
    w.expect(w.call("GET", get_url, None, sees=mine), 200)  # the real one still works
    w.expect(w.call("HEAD", get_url, None, sees=mine), 200)


def test_the_leak_check_catches_what_it_looks_for(world):
    """The checks every response above passed would have failed on a leak."""
    w = world
    with pytest.raises(AssertionError, match="shows"):  # the team's datastore, to a stranger
        w.call("GET", "/v1/datastores", w.owner.key, sees={w.owner.name})
    size = next(iter(w.sizes[w.owner.name]))
    fake = httpx.Response(200, content=b'{"size":%d}' % size, request=httpx.Request("GET", "/"))
    with pytest.raises(AssertionError, match="size"):
        w.assert_nothing_leaks(fake, "GET /", set())
    r = w.call("POST", "/v1/keys", w.member.key, {"expires_in": 60})
    w.keys.add(r.json()["api_key"])
    with pytest.raises(AssertionError, match="API key"):
        w.assert_nothing_leaks(r, "POST /v1/keys", set())


# -- a server that fetches sources itself, on S3 storage ---------------------------------------
SERVER_KEY_ID = "AKIAGRIDSERVERTEST01"


@pytest.fixture(scope="module")
def s3_server(s3_endpoint, tmp_path_factory):
    """A one-machine server whose storage is a bucket (moto), with credentials of its own,
    that imports from any bucket but its storage's: (database, URL, bucket)."""
    import boto3

    root = tmp_path_factory.mktemp("security-s3")
    bucket = f"grid-security-{_hex()}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    database = f"sqlite:///{root / 'server.db'}"
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": SERVER_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": "server-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with open(root / "server.log", "wb") as log:
        proc, url = start_server(
            database, f"s3://{bucket}/grid", root / "home", log, "--allow-s3-import", "*", **env
        )
        try:
            yield database, url, bucket
        finally:
            stop(proc)


def _post_import(url: str, key: str, owner: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The last line of an import's answer ({} if it was refused outright)."""
    r = httpx.post(
        f"{url}/v1/datastores/{owner}/{name}/imports",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    if r.status_code != 200:
        return {}
    return dict(json.loads(r.text.strip().splitlines()[-1]))


def _unpacked(data: bytes) -> bytes:
    """``data`` with every zstd frame in it decompressed (packs and manifests are)."""
    import zstandard

    out = [data]
    for m in re.finditer(rb"\x28\xb5\x2f\xfd", data):
        try:
            out.append(zstandard.ZstdDecompressor().decompressobj().decompress(data[m.start() :]))
        except zstandard.ZstdError:
            continue
    return b"".join(out)


def test_an_import_cannot_copy_another_owners_objects_out_of_the_servers_storage(
    s3_server, tmp_path, monkeypatch
):
    """The server never reads its own storage's bucket for a user (it would copy another
    owner's packs and manifests into the user's datastore)."""
    from grid.client.remote import RemoteClient

    database, url, bucket = s3_server
    victim, victim_key = new_user(database)
    thief, thief_key = new_user(database)
    marker = f"the diary of {victim} {_hex()}".encode()
    source = tmp_path / "diary"
    source.mkdir()
    (source / "diary.txt").write_bytes(marker * 50)
    monkeypatch.setenv("GRID_FSYNC", "0")
    with RemoteClient(url, victim_key, str(tmp_path / "victim")) as client:
        assert client.create(str(source), "private").status == "succeeded"
    last = _post_import(url, thief_key, thief, "loot", {"source": f"s3://{bucket}/grid/{victim}/"})
    recovered = []
    if "version" in last:
        with RemoteClient(url, thief_key, str(tmp_path / "thief")) as client:
            number = last["version"]["number"]
            recovered = [
                path
                for path, data in client.iter_files("loot", number)
                if marker in _unpacked(data)
            ]
    assert not recovered, f"{thief} reads {victim}'s file through {recovered}"
    assert "version" not in last, last


def test_an_import_takes_no_credentials_to_an_endpoint_the_client_names(s3_server):
    """An endpoint inside the server's network is refused like a private archive URL: the
    server never sends requests signed with its credentials there."""
    import socket
    import threading

    database, url, _bucket = s3_server
    user, key = new_user(database)
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    seen.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        body = {"source": "s3://any-bucket/any", "endpoint_url": f"http://127.0.0.1:{port}"}
        last = _post_import(url, key, user, "elsewhere", body)
    finally:
        done.set()
        thread.join(10)
        listener.close()
    assert not any(SERVER_KEY_ID.encode() in request for request in seen), seen[:1]
    assert not seen, seen[:1]  # a loopback endpoint: never reached
    assert "version" not in last, last


def test_no_key_is_in_the_server_log(world):
    """Run last: every key this module made, the server's log after all of the above."""
    text = world.log.read_text(errors="replace")
    assert world.keys and world.responses > 500
    for key in world.keys:
        assert _secret_part(key) not in text
