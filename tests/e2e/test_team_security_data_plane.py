"""Team mode's data plane: uploads only create (a URL never replaces an object, none is given
for a pack the owner has) and count only once a commit checked them; signed object URLs that
were forged, tampered with or used for another method are refused, on the session's SQLite
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

from tests.e2e.team_matrix import (
    PACKS,
    World,
    hex_id,
    manifest_key,
    token_key,
    world,  # noqa: F401 - the fixture, by name
)


def test_uploads_only_create_and_count_once_checked(world: World, tmp_path, monkeypatch):  # noqa: F811
    """A PUT URL creates its object once and never replaces it; no PUT URL is given for a
    pack the owner has; an upload is not one of the owner's packs (clients do not learn of
    it) until a commit has checked it."""
    from grid.client.remote import RemoteClient

    w, team, uploader, reader = world, world.team, world.member, world.owner

    # by hand: the URL names the key in the owner's storage, and creates it only once
    pack = uuid.uuid4().hex
    key = f"packs/{pack[:2]}/{pack}"
    url = w.object_url(uploader.key, team, "PUT", key)
    assert token_key(url) == f"{team}/{key}"
    data = os.urandom(4096)
    w.expect(w.call("PUT", url, None, content=data, sees={team}), 200)
    w.expect(w.call("PUT", url, None, content=os.urandom(4096), sees={team}), 412)
    assert (w.storage / team / key).read_bytes() == data
    listed = w.call("GET", PACKS.format(owner=team), reader.key).json()["packs"]
    assert pack not in {p["pack_id"] for p in listed}

    # through the client: its packs are the owner's once the commit checked them, and no
    # PUT URL is handed out for them any more
    monkeypatch.setenv("GRID_FSYNC", "0")
    source = tmp_path / "fresh"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(100_000))
    with RemoteClient(w.url, uploader.key, home=str(tmp_path / "home")) as client:
        v = client.create(str(source), f"{team}/fresh-{hex_id()}")
    assert v.status == "succeeded"
    listed = w.call("GET", PACKS.format(owner=team), reader.key).json()["packs"]
    assert listed
    for p in listed:
        taken = f"packs/{p['pack_id'][:2]}/{p['pack_id']}"
        r = w.call(
            "POST",
            f"/v1/owners/{team}/objects",
            uploader.key,
            {"method": "PUT", "keys": [taken]},
            sees={team},
        )
        w.expect(r, 409)


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
