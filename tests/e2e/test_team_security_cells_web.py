"""The cells of the matrix (``test_team_security.py`` runs them) for the web pages, asked with
each caller's key as the CLI sends it: the pages show a caller what the API shows them and no
more, refused keys get the sign-in page, and the sign-in form makes a session only for a
user's own valid key. No tests here (see ``test_team_security_cells_datastores.py``)."""

from __future__ import annotations

import httpx

from tests.e2e.team_matrix import OTHER, Cell, World, registrar

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
