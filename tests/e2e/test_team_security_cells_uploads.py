"""The cells of the matrix (``test_team_security.py`` runs them) for uploads in parts (the
web page's): only those who may write a datastore start, read, fill or finish an upload into
it; anyone else is answered as if it did not exist and stores nothing. No tests here."""

from __future__ import annotations

import dataclasses
import io
import tarfile

from tests.e2e.team_matrix import DS, Cell, Probe, World, hex_id, registrar

CELLS: dict[tuple[str, str], Cell] = {}
cell = registrar(CELLS)
UPLOADS = DS + "/uploads"
UPLOAD = UPLOADS + "/{upload_id}"


def _tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return out.getvalue()


DATA = _tar()


def _writer(w: World, p: Probe) -> str:
    """A key that may write ``p.owner``'s datastores."""
    return w.owner.key if p.owner == w.owner.name else w.member.key


def _begun(w: World, p: Probe) -> tuple[str, str]:
    """A scratch datastore of ``p.owner`` with an upload begun by a rightful writer."""
    name = f"up-{hex_id()}"
    body = {"size": len(DATA), "files": 1, "fingerprint": f"fp-{hex_id()}"}
    r = w.call("POST", UPLOADS.format(owner=p.owner, name=name), _writer(w, p), body)
    w.expect(r, 201)
    return name, r.json()["id"]


def _received(w: World, p: Probe, name: str, upload_id: str) -> list[int]:
    path = UPLOAD.format(owner=p.owner, name=name, upload_id=upload_id)
    return list(w.call("GET", path, _writer(w, p)).json()["received"])


def _cleanup(w: World, p: Probe, name: str) -> None:
    w.call("DELETE", DS.format(owner=p.owner, name=name), _writer(w, p))


@cell("POST", UPLOADS)
def _start(w: World, who: str, status: int) -> None:
    body = {"size": len(DATA), "files": 1, "fingerprint": f"fp-{hex_id()}"}
    for p in w.probes(who):
        name = f"up-{hex_id()}"
        r = w.call("POST", UPLOADS.format(owner=p.owner, name=name), p.key, body)
        w.expect(r, status, f"({who})")
        if status == 201:
            assert r.json()["received"] == [] and r.json()["version"] == 1
            _cleanup(w, p, name)
        else:
            made = w.call("GET", DS.format(owner=p.owner, name=name) + "/versions", _writer(w, p))
            assert made.status_code == 404  # no datastore was made
            if status == 404:
                asked = dataclasses.replace(p, name=name)
                w.assert_as_if_missing(r, asked, "POST", UPLOADS, body, own=False)


def _on_upload(method: str, suffix: str) -> Cell:
    def run_cell(w: World, who: str, status: int) -> None:
        for p in w.probes(who):
            name, upload_id = _begun(w, p)
            template = UPLOAD + suffix
            path = template.format(owner=p.owner, name=name, upload_id=upload_id)
            content = DATA if method == "PUT" else None
            r = w.call(method, path, p.key, content=content)
            w.expect(r, status, f"({who})")
            if status == 400:  # let in: a finish, or a part said stored, with none sent
                want = "parts are missing" if suffix == "/finish" else "not in the store"
                assert want in r.json()["detail"]
            elif status == 200:
                assert r.json()["id"] == upload_id
            elif status == 204:
                assert _received(w, p, name, upload_id) == [0]
            else:
                assert _received(w, p, name, upload_id) == []  # nothing stored
                if status == 404:
                    asked = dataclasses.replace(p, name=name)
                    w.assert_as_if_missing(
                        r, asked, method, template, own=False, upload_id=upload_id
                    )
            _cleanup(w, p, name)

    return run_cell


cell("GET", UPLOAD)(_on_upload("GET", ""))
cell("PUT", UPLOAD + "/parts/{part}")(_on_upload("PUT", "/parts/0"))
cell("POST", UPLOAD + "/finish")(_on_upload("POST", "/finish"))
cell("POST", UPLOAD + "/parts/{part}/stored")(_on_upload("POST", "/parts/0/stored"))
