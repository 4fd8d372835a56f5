"""The cells of the matrix (``test_team_security.py`` runs them) for the web pages, asked with
each caller's key as the CLI sends it: the pages show a caller what the API shows them and no
more, refused keys get the sign-in page, and the sign-in form makes a session only for a
user's own valid key. No tests here (see ``test_team_security_cells_datastores.py``)."""

from __future__ import annotations

import httpx

from tests.e2e.team_matrix import OTHER, Cell, World, hex_id, registrar
from tests.e2e.test_team_security_cells_runs import _as_if_missing, _end, _target

CELLS: dict[tuple[str, str], Cell] = {}
cell = registrar(CELLS)


@cell("GET", "/ui/static/{name}")
def _static(w: World, who: str, status: int) -> None:
    for name in ("htmx.min.js", "grid.css"):
        w.expect(w.call("GET", f"/ui/static/{name}", w.key_of(who)), status)
    w.expect(w.call("GET", "/ui/static/web.py", w.key_of(who)), 404)


@cell("GET", "/ui/sign-in")
def _sign_in_page(w: World, who: str, status: int) -> None:
    r = w.call("GET", "/ui/sign-in", w.key_of(who))
    w.expect(r, status)
    if status == 303:
        assert r.headers["location"] == "/ui/"
    else:
        assert 'name="key"' in r.text


@cell("POST", "/ui/sign-in")
def _sign_in(w: World, who: str, status: int) -> None:
    key = w.key_of(who) or ""
    name = w.person(who).name if who in ("owner", "member", OTHER) else w.owner.name
    form = {"username": name, "key": key}
    r = w.http.post("/ui/sign-in", data=form)
    w.http.cookies.clear()  # the matrix's client must stay cookie-free for the other cells
    w.responses += 1
    w.assert_nothing_leaks(r, f"/ui/sign-in {name}", w.sees(key) if status == 303 else set())
    assert r.status_code == status, (who, r.status_code, r.text[:200])
    if status == 303:
        session = r.cookies["grid_session"]
        w.keys.add(session)
        assert session != key  # a session key of its own
        with httpx.Client(base_url=w.url, cookies={"grid_session": session}) as browser:
            assert browser.get("/v1/whoami").json()["username"] == name
    elif status == 401:
        assert "grid_session" not in r.cookies and "Wrong username or API key." in r.text
    else:  # no key at all: the form is incomplete
        assert "grid_session" not in r.cookies


@cell("POST", "/ui/sign-out")
def _sign_out(w: World, who: str, status: int) -> None:
    r = w.call("POST", "/ui/sign-out", w.key_of(who))
    w.expect(r, status)
    assert r.headers["hx-redirect"] == "/ui/sign-in"


@cell("GET", "/ui/")
def _datastores_page(w: World, who: str, status: int) -> None:
    r = w.call("GET", "/ui/", w.key_of(who))
    w.expect(r, status)
    if status == 303:
        assert r.headers["location"] == "/ui/sign-in"
        return
    mine = {w.owner.name: w.personal, w.team: w.team_ds, w.other.name: w.others}
    for owner in w.sees(w.key_of(who)):
        if owner in mine:  # (a member owns no datastore of their own)
            assert f">{mine[owner]}</a></td>" in r.text


@cell("GET", "/ui/datastores")
def _datastores_table(w: World, who: str, status: int) -> None:
    r = w.call("GET", "/ui/datastores?q=ds-", w.key_of(who))
    w.expect(r, status)
    seen = w.sees(w.key_of(who))
    if not seen or w.key_of(who) == w.run_key:
        assert r.headers.get("hx-redirect") == "/ui/sign-in" and r.text == ""


def _datastore_route(path: str, fragment: bool) -> Cell:
    def run_cell(w: World, who: str, status: int) -> None:
        for p in w.probes(who):
            r = w.call("GET", path.format(owner=p.owner, name=p.name), p.key)
            w.expect(r, status, f"({who})")
            if status == 303:
                assert r.headers["location"] == "/ui/sign-in"
            elif (status == 200 and p.key in (w.run_key, None)) or w.sees(p.key) == set():
                assert fragment and r.headers.get("hx-redirect") == "/ui/sign-in"
            elif status == 200:
                assert 'id="version-1"' in r.text
            elif status == 404:
                w.assert_as_if_missing(r, p, "GET", path)

    return run_cell


cell("GET", "/ui/datastores/{owner}/{name}")(
    _datastore_route("/ui/datastores/{owner}/{name}", fragment=False)
)
cell("GET", "/ui/datastores/{owner}/{name}/versions")(
    _datastore_route("/ui/datastores/{owner}/{name}/versions", fragment=True)
)


@cell("GET", "/ui/runs")
def _runs_page(w: World, who: str, status: int) -> None:
    r = w.call("GET", "/ui/runs", w.key_of(who))
    w.expect(r, status)
    if status == 303:
        assert r.headers["location"] == "/ui/sign-in"
    elif who == "owner":
        assert f'id="run-{w.run_id}"' in r.text  # the owner's own run (the run key's)
    else:
        assert f'id="run-{w.run_id}"' not in r.text  # someone else's: never listed


def _version_route(path: str, query: str, shows: str) -> Cell:
    """A page about version 1 of a datastore (``query`` may name its file); on 200 it
    ``shows`` the file's name, its size in bytes, or an empty diff."""

    def run_cell(w: World, who: str, status: int) -> None:
        for p in w.probes(who):
            file, size = w.files.get((p.owner, p.name), ("", 0))
            template = path + query.format(file=file)
            r = w.call("GET", template.format(owner=p.owner, name=p.name), p.key)
            w.expect(r, status, f"({who})")
            if status == 303:
                assert r.headers["location"] == "/ui/sign-in"
            elif status == 200:
                if shows == "raw":
                    assert len(r.content) == size
                else:
                    want = {"name": file, "bytes": f"{size:,} bytes", "diff": "0 added"}[shows]
                    assert want in r.text
            elif status == 404:
                w.assert_as_if_missing(r, p, "GET", template)

    return run_cell


for _path, _query, _shows in (
    ("/ui/datastores/{owner}/{name}/{number:int}", "", "name"),
    ("/ui/datastores/{owner}/{name}/{number:int}/file", "?path={file}", "bytes"),
    ("/ui/datastores/{owner}/{name}/{number:int}/raw", "?path={file}", "raw"),
    ("/ui/datastores/{owner}/{name}/diff", "?a=1&b=1", "diff"),
):
    cell("GET", _path)(_version_route(_path.replace("{number:int}", "1"), _query, _shows))


@cell("GET", "/ui/runs/new")
def _new_run_page(w: World, who: str, status: int) -> None:
    r = w.call("GET", "/ui/runs/new", w.key_of(who))
    w.expect(r, status)
    if status == 303:
        assert r.headers["location"] == "/ui/sign-in"
        return
    for owner in w.sees(w.key_of(who)):  # the datastores offered: the caller's to read only
        mine = {w.owner.name: w.personal, w.team: w.team_ds}.get(owner)
        if mine:
            assert mine in r.text


@cell("GET", "/ui/runs/versions")
def _version_options(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        path = f"/ui/runs/versions?datastore={p.owner}/{p.name}"
        r = w.call("GET", path, p.key)
        w.expect(r, status, f"({who})")
        if status == 200 and (p.key in (w.run_key, None) or w.sees(p.key) == set()):
            assert r.headers.get("hx-redirect") == "/ui/sign-in" and r.text == ""
        elif status == 200:
            assert '<option value="1">1</option>' in r.text
        else:
            w.assert_as_if_missing(r, p, "GET", "/ui/runs/versions?datastore={owner}/{name}")


def _auth(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


@cell("POST", "/ui/runs")
def _start_run(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        form = {"kind": "run", "command": "true", "datastore": f"{p.owner}/{p.name}"}
        r = w.http.post("/ui/runs", data=form, headers=_auth(p.key))
        w.responses += 1
        w.assert_nothing_leaks(r, f"POST /ui/runs {form}", w.sees(p.key))
        w.expect(r, status, f"({who})")
        if status != 200:
            continue
        if p.owner in w.sees(p.key):  # this server runs no code: the command to type
            assert "grid run --datastore" in r.text and p.name in r.text
        else:
            ghost = dict(form, datastore=f"{p.owner}/ghost-{hex_id()}")
            missing = w.http.post("/ui/runs", data=ghost, headers=_auth(p.key))
            assert r.text.replace(p.name, "X") == missing.text.replace(
                ghost["datastore"].split("/")[1], "X"
            )


@cell("GET", "/ui/runs/{run_id}/log")
def _run_log(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        run = _target(w, who, p)
        path = f"/ui/runs/{run['id']}/log"
        r = w.call("GET", path, p.key)
        w.expect(r, status, f"({who})")
        if status == 303:
            assert r.headers["location"] == "/ui/sign-in"
        elif status == 200:
            assert "The log is on matrix" in r.text  # not this server's: never read
        else:
            _as_if_missing(w, r, "GET", "/ui/runs/{run_id}/log", p, run["id"])
        _end(w, run)


@cell("POST", "/ui/runs/{run_id}/stop")
def _stop_run(w: World, who: str, status: int) -> None:
    for p in w.probes(who):
        run = _target(w, who, p)
        r = w.call("POST", f"/ui/runs/{run['id']}/stop", p.key)
        w.expect(r, status, f"({who})")
        if status == 200:  # started elsewhere: this server says where to stop it
            assert f"grid run stop {run['id']}" in r.text and "matrix" in r.text
        elif status == 404:
            _as_if_missing(w, r, "POST", "/ui/runs/{run_id}/stop", p, run["id"])
        assert (
            w.call(
                "GET",
                f"/v1/runs/{run['id']}",
                w.owner.key if who not in ("owner", "member") else p.key,
            ).json()["status"]
            == "queued"
        )
        _end(w, run)
