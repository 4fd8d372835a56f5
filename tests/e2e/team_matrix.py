"""The world team mode's security tests probe, on a real `grid server`: its accounts (an
owner, a teammate, a stranger, a disabled user; revoked and expired keys) and datastores (a
user's, a team's, a stranger's), and the checks every response gets (nothing of an owner the
caller may not see, no API key but the one a response creates). Not a test module: the test
modules import ``world`` by name (``from tests.e2e.team_matrix import world``), and each gets
its own, once per database (the session's SQLite server, and one on PostgreSQL).
"""

from __future__ import annotations

import base64
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
# the owner's run key (what a SLURM job gets): it reads the owner's personal:1, which its live
# run attaches, and nothing else
RUN_KEY = "run key"
CALLERS = (OWNER, MEMBER, OTHER, NO_KEY, REVOKED, EXPIRED, DISABLED, RUN_KEY)
REFUSED = (NO_KEY, REVOKED, EXPIRED, DISABLED)

DS = "/v1/datastores/{owner}/{name}"
VERSION = DS + "/versions/{number}"
OBJECTS = "/v1/owners/{owner}/objects"
PACKS = "/v1/owners/{owner}/packs"
GC = "/v1/owners/{owner}/gc"
USAGE = "/v1/owners/{owner}/usage"
CHECK = "/v1/owners/{owner}/packs/check"
TOKEN = "/v1/objects/{token}"

HOLDER = {"host": "matrix", "pid": 7}
MATRIX_SOURCE = "matrix-source"
EXPIRES_IN = 2.0
PROBLEM = {"type", "title", "status", "detail", "code", "attrs"}


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


def hex_id() -> str:
    return uuid.uuid4().hex[:10]


def secret_part(key: str) -> str:
    return key.split("_", 2)[2]


def token_key(url: str) -> str:
    """The storage key a signed object URL names."""
    payload = url.rsplit("/", 1)[1].partition(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(payload))[0])


def manifest_key(manifest_id: str) -> str:
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
    files: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)  # name, size
    secrets: dict[str, set[str]] = field(default_factory=dict)  # owner -> words
    sizes: dict[str, set[int]] = field(default_factory=dict)  # owner -> numbers
    keys: set[str] = field(default_factory=set)  # every key made so far
    refused_body: Any = None
    responses: int = 0
    run_key: str = ""  # of ``owner``'s live run that attaches ``personal``:1
    run_id: int = 0

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
            RUN_KEY: self.run_key,
        }[who]

    def person(self, who: str) -> Person:
        return {OWNER: self.owner, MEMBER: self.member, OTHER: self.other, RUN_KEY: self.owner}[who]

    def sees(self, key: str | None) -> set[str]:
        """The owners whose datastores the holder of ``key`` may learn about."""
        return {
            self.owner.key: {self.owner.name, self.team},
            self.member.key: {self.member.name, self.team},
            self.other.key: {self.other.name},
            self.run_key: {self.owner.name},  # ... but only what its run attaches
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
            for n in self.sizes.get(owner, ()):
                pattern = rf"(?<![\w.]){n}(?![\w.])"  # not a part of a longer number
                assert not re.search(pattern, text), f"{what} shows size {n} of {owner}"
        for key in self.keys:
            secret = secret_part(key)
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
        assert set(problem) == PROBLEM and problem["status"] == status, problem
        if status == 404:
            assert problem["code"] in (
                "not_found",
                "datastore_not_found",
                "run_not_found",
                "job_not_found",
            ), problem
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
        ghost, nobody = f"ghost-{hex_id()}", f"nobody-{hex_id()}"
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

    name = f"ds-{hex_id()}"
    source = tmp / f"src-{hex_id()}"
    source.mkdir()
    size = os.getpid()
    while size == os.getpid():
        size = random.randrange(200_000, 600_000)
    file = f"file-{hex_id()}.bin"
    (source / file).write_bytes(os.urandom(size))
    with RemoteClient(w.url, who.key, home=str(tmp / f"home-{who.name}")) as client:
        v = client.create(str(source), f"{owner}/{name}" if qualified else name)
    assert v.status == "succeeded" and v.size == size
    w.secrets.setdefault(owner, set()).update({name, v.source, source.name, v.manifest_id})
    w.sizes.setdefault(owner, set()).update({v.size, v.stored_bytes})
    w.manifests[owner, name] = v.manifest_id
    w.files[owner, name] = file, size
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

    team = f"t{hex_id()}"
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
    run = {
        "kind": "run", "name": "matrix-job", "command": ["job"], "executor": "slurm",
        "host": "matrix", "pid": 7, "lease_seconds": 86400,
        "datastores": [{"datastore": w.personal, "version": 1, "path": "/datastores/p/1"}],
    }  # fmt: skip
    r = w.call("POST", "/v1/runs", owner.key, run)
    w.expect(r, 201)
    w.run_id = int(r.json()["id"])
    r = w.call("POST", f"/v1/runs/{w.run_id}/key", owner.key, {"expires_in": 3600})
    w.expect(r, 201)
    w.run_key = r.json()["key"]
    w.keys.add(w.run_key)
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
        # S3 imports of matrix-bucket only, through an endpoint nobody listens on
        proc, url = start_server(
            database, str(tmp / "objects"), tmp / "home", log,
            "--allow-s3-import", "matrix-bucket", AWS_ENDPOINT_URL="http://127.0.0.1:9",
        )  # fmt: skip
        try:
            yield from _build(database, url, tmp / "server.log", tmp / "objects", tmp)
        finally:
            stop(proc)


# -- the matrix's cells: (method, path) -> what runs a row's cell for one caller ----------------
Cell = Callable[[World, str, int], None]


def registrar(cells: dict[tuple[str, str], Cell]) -> Callable[[str, str], Callable[[Cell], Cell]]:
    """A decorator, ``@cell(method, path)``, that adds the function it wraps to ``cells``."""

    def cell(method: str, path: str) -> Callable[[Cell], Cell]:
        def register(fn: Cell) -> Cell:
            cells[method, path] = fn
            return fn

        return register

    return cell
