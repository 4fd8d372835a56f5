"""Team mode's data plane: a PUT URL only ever points into the asking user's staging area (what
a member uploads reaches no one else before their commit publishes it), and signed object URLs
that were forged, tampered with or used for another method are refused, on the session's SQLite
server and one on PostgreSQL (the world of ``team_matrix.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from typing import Any

import httpx

from tests.e2e.team_matrix import (
    PACKS,
    Person,
    World,
    hex_id,
    manifest_key,
    token_key,
    world,  # noqa: F401 - the fixture, by name
)


def test_a_put_url_points_into_the_askers_staging_area(world: World, tmp_path, monkeypatch):  # noqa: F811
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
    assert token_key(url) == f"{team}/staging/{uploader.name}/{key}"
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
        v = client.create(str(source), f"{team}/fresh-{hex_id()}")
    assert v.status == "succeeded" and seen and not problems, problems
    listed = w.call("GET", PACKS.format(owner=team), reader.key).json()["packs"]
    for staged, data in seen.items():
        r = fetch(reader, staged)
        w.expect(r, 200)
        assert r.content == data
        assert staged.rsplit("/", 1)[1] in {p["pack_id"] for p in listed}


def test_forged_tampered_or_misused_object_urls_are_refused(world):  # noqa: F811
    from grid.catalog import Catalog

    w, owner = world, world.owner
    mine = w.sees(owner.key)
    key = manifest_key(w.manifests[owner.name, w.personal])
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
