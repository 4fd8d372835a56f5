"""Team mode's authorisation matrix: every route of the API × every kind of caller, on real
`grid server` processes (the session's SQLite server, and one on PostgreSQL), folder storage.

The callers: the owner of a datastore (a user, on their own); a member of the team that owns
one; another user (and a teammate asking for a teammate's own datastore), who is answered 404
with the very body a datastore that does not exist gets, never 403; no key, a revoked key, an
expired key and a disabled user's key, answered 401 by every route but the public ones. Every
response is searched for what its caller must not learn (other owners' datastore names,
sources, manifest and pack ids, sizes) and for every API key but the one that response creates;
the server's log, for every key, after the whole matrix.

``EXPECTED`` is the table; ``test_the_matrix_covers_every_route`` fails when the application
has a route without a row (or a row without a route). Each row's cells are in
``test_team_security_cells_accounts.py`` and ``test_team_security_cells_datastores.py``; the
world they run in, in ``team_matrix.py``. The data plane (staging areas, forged object URLs) is
in ``test_team_security_data_plane.py``; a server that fetches sources itself, in
``test_team_security_imports.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e import test_team_security_cells_accounts as accounts
from tests.e2e import test_team_security_cells_datastores as datastores
from tests.e2e import test_team_security_cells_jobs as jobs
from tests.e2e import test_team_security_cells_runs as runs
from tests.e2e import test_team_security_cells_schedules as schedules
from tests.e2e import test_team_security_cells_uploads as uploads
from tests.e2e import test_team_security_cells_web as web
from tests.e2e.team_matrix import (
    CALLERS,
    CHECK,
    DS,
    GC,
    MEMBER,
    NO_KEY,
    OBJECTS,
    OTHER,
    OWNER,
    PACKS,
    REFUSED,
    RUN_KEY,
    TOKEN,
    USAGE,
    VERSION,
    manifest_key,
    secret_part,
    world,  # noqa: F401 - the fixture, by name
)


def _row(
    owner: int, member: int, other: int, refused: int = 401, run_key: int = 401
) -> dict[str, int]:
    """Expected statuses: the owner on their datastore, a member on their team's, another
    user (or teammate) on someone else's, the four refused keys, and the owner's run key
    (on the owner's datastore its run attaches)."""
    row = {OWNER: owner, MEMBER: member, OTHER: other, RUN_KEY: run_key}
    return row | dict.fromkeys(REFUSED, refused)


PUBLIC = _row(200, 200, 200, 200, 200)
WEB_PAGE = _row(200, 200, 404, refused=303, run_key=303)  # a page about one datastore

EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("HEAD", "/openapi.json"): PUBLIC,
    ("GET", "/v1/health"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,  # operations: for probes and Prometheus, no key
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/v1/whoami"): _row(200, 200, 200, run_key=200),
    ("GET", "/v1/keys"): _row(200, 200, 200),
    ("POST", "/v1/keys"): _row(201, 201, 201),
    ("DELETE", "/v1/keys/{key_id}"): _row(204, 204, 404),  # another's key: not found
    ("GET", "/v1/datastores"): _row(200, 200, 200),  # each sees only their own owners'
    ("GET", DS + "/versions"): _row(200, 200, 404),
    ("POST", DS + "/versions"): _row(201, 201, 404),
    ("GET", VERSION): _row(200, 200, 404, run_key=200),
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
    # uploads in parts (the web page's): only a writer of the datastore; let in, a finish
    # before the parts are sent is refused, and so is a part said stored that was not
    ("POST", DS + "/uploads"): _row(201, 201, 404),
    ("GET", DS + "/uploads/{upload_id}"): _row(200, 200, 404),
    ("PUT", DS + "/uploads/{upload_id}/parts/{part}"): _row(204, 204, 404),
    ("POST", DS + "/uploads/{upload_id}/finish"): _row(400, 400, 404),
    ("POST", DS + "/uploads/{upload_id}/parts/{part}/stored"): _row(400, 400, 404),
    ("POST", OBJECTS): _row(200, 200, 404, run_key=200),  # a run key: GET of its run's
    ("GET", PACKS): _row(200, 200, 404),
    ("POST", CHECK): _row(200, 200, 404),
    ("POST", GC): _row(200, 200, 404),  # let in: a dry run; refused: the harshest run
    ("GET", USAGE): _row(200, 200, 404),
    # a caller's runs are their own; a version's lineage, anyone's who reads the version
    ("POST", "/v1/runs"): _row(201, 201, 404),
    ("GET", "/v1/runs"): _row(200, 200, 200),
    ("GET", "/v1/runs/{run_id}"): _row(200, 200, 404),
    ("PATCH", "/v1/runs/{run_id}"): _row(200, 200, 404),
    ("POST", "/v1/runs/{run_id}/attach"): _row(200, 200, 404),
    ("POST", "/v1/runs/{run_id}/detach"): _row(200, 200, 404),
    ("POST", "/v1/runs/{run_id}/key"): _row(201, 201, 404),
    ("GET", VERSION + "/runs"): _row(200, 200, 404),
    # jobs: those of the caller's owners (themself, their teams); another's is not found
    ("GET", "/v1/jobs"): _row(200, 200, 200),
    ("GET", "/v1/jobs/{job_id}"): _row(200, 200, 404),
    ("POST", "/v1/jobs/{job_id}/cancel"): _row(200, 200, 404),
    # schedules the server keeps: set and removed by a writer of the datastore
    ("PUT", DS + "/schedule"): _row(200, 200, 404),
    ("DELETE", DS + "/schedule"): _row(204, 204, 404),
    ("GET", "/v1/schedules"): _row(200, 200, 200),
    # the web pages: what the API shows each caller; refused keys get the sign-in page
    ("GET", "/ui/static/{name}"): PUBLIC,
    ("GET", "/ui/sign-in"): _row(303, 303, 303, refused=200, run_key=200),
    ("POST", "/ui/sign-in"): _row(303, 303, 303, run_key=401) | {NO_KEY: 422},
    ("POST", "/ui/sign-out"): PUBLIC,  # a bearer key signs nothing out
    ("GET", "/ui/"): _row(200, 200, 200, refused=303, run_key=303),
    ("GET", "/ui/datastores"): PUBLIC,  # refused: empty, with HX-Redirect to the sign-in page
    ("GET", "/ui/datastores/{owner}/{name}"): _row(200, 200, 404, refused=303, run_key=303),
    ("GET", "/ui/runs"): _row(200, 200, 200, refused=303, run_key=303),
    ("GET", "/ui/datastores/{owner}/{name}/versions"): _row(
        200, 200, 404, refused=200, run_key=200
    ),
    ("GET", "/ui/runs/new"): _row(200, 200, 200, refused=303, run_key=303),
    ("GET", "/ui/runs/versions"): _row(200, 200, 404, refused=200, run_key=200),
    # let in: the command to type (this server runs no code), or what is wrong with the form
    ("POST", "/ui/runs"): _row(200, 200, 200),
    ("GET", "/ui/runs/{run_id}/log"): WEB_PAGE,  # only the caller's own runs
    ("POST", "/ui/runs/{run_id}/stop"): _row(200, 200, 404),  # not started here: where to
    ("GET", "/ui/datastores/{owner}/{name}/{number:int}"): WEB_PAGE,
    ("GET", "/ui/datastores/{owner}/{name}/{number:int}/file"): WEB_PAGE,
    ("GET", "/ui/datastores/{owner}/{name}/{number:int}/raw"): WEB_PAGE,
    ("GET", "/ui/datastores/{owner}/{name}/diff"): WEB_PAGE,
    # the signed URL is the capability: the key sent with it (if any) changes nothing
    ("GET", TOKEN): PUBLIC,
    ("HEAD", TOKEN): PUBLIC,
    ("PUT", TOKEN): PUBLIC,
}

# Cells that show a server bug: (route, caller) -> reason, each run as a strict xfail.
KNOWN_BUGS: dict[tuple[tuple[str, str], str], str] = {}

CELLS = (
    accounts.CELLS
    | datastores.CELLS
    | jobs.CELLS
    | runs.CELLS
    | schedules.CELLS
    | uploads.CELLS
    | web.CELLS
)


def _cells() -> list[Any]:
    out = []
    for route in EXPECTED:
        for who in CALLERS:
            reason = KNOWN_BUGS.get((route, who))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(route, who, marks=marks, id=f"{' '.join(route)} | {who}"))
    return out


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


def test_the_matrix_covers_every_route(world, tmp_path):  # noqa: F811
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
def test_matrix(world, route, who):  # noqa: F811
    CELLS[route](world, who, EXPECTED[route][who])


def test_the_leak_check_catches_what_it_looks_for(world):  # noqa: F811
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


def test_a_run_key_reads_its_runs_versions_only_and_only_while_it_runs(world):  # noqa: F811
    """Beyond the matrix's row: every other version, object, method and owner is refused as
    any refused key is, and the key is worth nothing once its run ended."""
    w = world
    body = {
        "kind": "run", "name": "scoped", "command": ["job"], "executor": "slurm",
        "host": "matrix", "pid": 7, "lease_seconds": 600,
        "datastores": [{"datastore": w.personal, "version": 1}],
    }  # fmt: skip
    run = w.call("POST", "/v1/runs", w.owner.key, body).json()
    key = w.call("POST", f"/v1/runs/{run['id']}/key", w.owner.key, {}).json()["key"]
    w.keys.add(key)
    mine = VERSION.format(owner=w.owner.name, name=w.personal, number=1)
    w.expect(w.call("GET", mine, key, sees={w.owner.name}), 200)
    manifest = manifest_key(w.manifests[w.owner.name, w.personal])
    packs = w.call("GET", PACKS.format(owner=w.owner.name), w.owner.key).json()["packs"]
    pack = f"packs/{packs[0]['pack_id'][:2]}/{packs[0]['pack_id']}"
    objects = OBJECTS.format(owner=w.owner.name)
    ok = w.call(
        "POST", objects, key, {"method": "GET", "keys": [manifest, pack]}, sees={w.owner.name}
    )
    w.expect(ok, 200)
    refused = [
        ("GET", VERSION.format(owner=w.team, name=w.team_ds, number=1), None),
        ("GET", VERSION.format(owner=w.owner.name, name=w.personal, number=2), None),
        ("GET", DS.format(owner=w.owner.name, name=w.personal) + "/versions", None),
        ("GET", VERSION.format(owner=w.other.name, name=w.others, number=1), None),
        ("POST", objects, {"method": "PUT", "keys": [manifest]}),
        ("POST", objects, {"method": "GET", "keys": [f"packs/00/{'0' * 32}"]}),
        ("POST", OBJECTS.format(owner=w.team), {"method": "GET", "keys": [manifest]}),
        ("GET", "/v1/datastores", None),
        ("GET", PACKS.format(owner=w.owner.name), None),
        ("POST", "/v1/keys", {"expires_in": 60}),
        ("POST", f"/v1/runs/{run['id']}/key", {}),
        ("PATCH", f"/v1/runs/{run['id']}", {"status": "running"}),
    ]
    for method, path, sent in refused:
        w.expect(w.call(method, path, key, sent, sees=set()), 401, f"{path} {sent}")
    w.expect(w.call("PATCH", f"/v1/runs/{run['id']}", w.owner.key, {"status": "succeeded"}), 200)
    w.expect(w.call("GET", mine, key, sees=set()), 401)  # the run ended: the key reads nothing


def test_no_key_is_in_the_server_log(world):  # noqa: F811
    """Run last: every key this module made, the server's log after all of the above."""
    text = world.log.read_text(errors="replace")
    assert world.keys and world.responses > 500
    for key in world.keys:
        assert secret_part(key) not in text
