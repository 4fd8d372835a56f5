"""Uploads in parts through the API the web page uses: a tar stream sent in parts, resumed
after a drop (only the missing parts sent), finished into a version that verifies and reads
back byte for byte, deduplicated like the CLI's creates; bad parts refused, a version held
while the upload runs, and nothing of it visible to another user."""

from __future__ import annotations

import io
import json
import os
import tarfile

import httpx
import pytest
import sqlalchemy

from grid.client.remote import RemoteClient
from grid.service.staged_upload import PART_SIZE
from tests.team import new_user


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def alice(team_server, tmp_path, monkeypatch):
    database, url = team_server
    user, key = new_user(database)
    monkeypatch.setenv("GRID_FSYNC", "0")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as h:
        yield url, user, key, h


def _finish(h: httpx.Client, base: str, upload_id: str) -> dict:
    with h.stream("POST", f"{base}/{upload_id}/finish") as r:
        assert r.status_code == 200, r.read()
        lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
    return lines[-1]


def test_parts_resume_finish_and_dedup(alice, tmp_path):
    url, user, key, h = alice
    files = {f"cats/c{i:03d}.bin": os.urandom(70_000) for i in range(300)}
    files["cats/deep/é long name " + "x" * 150 + ".txt"] = b"unicode and long"
    data = _tar(files)
    parts = -(-len(data) // PART_SIZE)
    assert parts >= 3
    base = f"/v1/datastores/{user}/pets/uploads"
    body = {
        "size": len(data),
        "files": len(files),
        "fingerprint": "fp-0123456789",
        "label": "cats/",
    }
    started = h.post(base, json=body).json()
    assert started["parts"] == parts and started["received"] == []
    upload_id, number = started["id"], started["version"]
    listed = h.get(f"/v1/datastores/{user}/pets/versions").json()
    assert [(v["number"], v["status"]) for v in listed] == [(number, "uploading")]

    def send(n: int) -> httpx.Response:
        return h.put(
            f"{base}/{upload_id}/parts/{n}", content=data[n * PART_SIZE : (n + 1) * PART_SIZE]
        )

    assert send(0).status_code == 204  # ... then the connection drops
    again = h.post(base, json=body).json()  # a reloaded page starts the same upload
    assert again["id"] == upload_id and again["received"] == [0] and again["version"] == number
    progress = h.get(f"/v1/datastores/{user}/pets/versions/{number}").json()
    assert progress["progress_done"] == PART_SIZE and progress["progress_total"] == len(data)
    early = h.post(f"{base}/{upload_id}/finish")
    assert early.status_code == 400 and "missing" in early.json()["detail"]
    for n in range(1, parts):
        assert send(n).status_code == 204
    end = _finish(h, base, upload_id)
    version = end["version"]
    assert version["number"] == number and version["status"] == "succeeded"
    assert version["files"] == len(files)
    assert h.get(f"{base}/{upload_id}").status_code == 404  # parts and record gone

    with RemoteClient(url, key, str(tmp_path / "home")) as c:
        assert c.verify("pets", number).ok
        for path, content in files.items():
            assert c.read_bytes("pets", number, path.removeprefix("cats/")) == content
        again = h.post(base, json=body).json()  # the same folder once more
        assert again["id"] == upload_id and again["received"] == []
        for n in range(parts):
            send_id = again["id"]
            h.put(f"{base}/{send_id}/parts/{n}", content=data[n * PART_SIZE : (n + 1) * PART_SIZE])
        second = _finish(h, base, again["id"])["version"]
        assert second["number"] == number + 1 and second["status"] == "succeeded"
        assert second["stored_bytes"] < version["stored_bytes"] // 500  # dedup: a manifest only
        assert not c.diff("pets", number, second["number"]).added


def test_bad_parts_are_refused_and_others_see_nothing(alice, team_server):
    url, user, _, h = alice
    database, _ = team_server
    _, bob_key = new_user(database)
    data = _tar({"a.txt": b"a" * 1000})
    base = f"/v1/datastores/{user}/bad/uploads"
    started = h.post(
        base, json={"size": len(data), "files": 1, "fingerprint": "fp-abcdefgh"}
    ).json()
    part = f"{base}/{started['id']}/parts"
    short = h.put(f"{part}/0", content=data[:-1])
    assert short.status_code == 400 and "must be" in short.json()["detail"]
    beyond = h.put(f"{part}/1", content=data)
    assert beyond.status_code == 400 and "parts 0 to 0" in beyond.json()["detail"]
    huge = h.put(f"{part}/0", content=b"x" * (PART_SIZE + 1))
    assert huge.status_code == 400
    for forged in ("..%2F..%2Fx", "A" * 32, "0" * 32):  # not an id; no such upload
        assert h.get(f"{base}/{forged}").status_code == 404
    for bad in (
        {"size": 0, "files": 1, "fingerprint": "fp-abcdefgh"},
        {"size": 5, "files": 0, "fingerprint": "fp-abcdefgh"},
    ):
        assert h.post(base, json=bad).status_code == 422
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bob_key}"}) as bob:
        theirs = bob.put(f"{part}/0", content=data)
        assert theirs.status_code == 404 and user not in theirs.text
        assert bob.get(f"{base}/{started['id']}").status_code == 404
    assert h.get(f"{base}/{started['id']}").json()["received"] == []  # nothing was stored
    not_a_tar = b"this is not an archive at all" * 100
    started = h.post(
        base, json={"size": len(not_a_tar), "files": 1, "fingerprint": "fp-nottar1"}
    ).json()
    h.put(f"{base}/{started['id']}/parts/0", content=not_a_tar)
    end = _finish(h, base, started["id"])
    assert "error" in end and "not a .zip, .tar" in end["error"]["detail"]
    versions = h.get(f"/v1/datastores/{user}/bad/versions").json()
    assert all(v["status"] != "succeeded" for v in versions)


def test_gc_keeps_a_live_uploads_parts_and_clears_an_abandoned_one(alice, team_server, tmp_path):
    url, user, key, h = alice
    database, _ = team_server
    data = _tar({"a.bin": os.urandom(5000)})
    base = f"/v1/datastores/{user}/left/uploads"
    body = {"size": len(data), "files": 1, "fingerprint": "fp-abandoned"}
    up = h.post(base, json=body).json()
    assert h.put(f"{base}/{up['id']}/parts/0", content=data).status_code == 204
    with RemoteClient(url, key, str(tmp_path / "home")) as c:
        assert c.gc(grace=0).retired_deleted == 0  # the upload holds its version: kept
        assert h.get(f"{base}/{up['id']}").json()["received"] == [0]
        engine = sqlalchemy.create_engine(database)  # a day later: the browser never came back
        with engine.begin() as db:
            db.execute(
                sqlalchemy.text("UPDATE versions SET lease_expires_at = :t WHERE source LIKE :s"),
                {"t": "2000-01-01 00:00:00", "s": f"upload {up['id'][:12]}%"},
            )
        engine.dispose()
        assert c.gc(grace=0).retired_deleted == 2  # its part and its record
    assert h.get(f"{base}/{up['id']}").status_code == 404
    again = h.post(base, json=body).json()  # starting it again sends everything anew
    assert again["id"] == up["id"] and again["received"] == []
