"""The web pages in a real browser (Debian's chromium driven by Playwright): sign in, a wrong
key refused, each user sees their own and their teams' datastores only, the filter, live
statuses, CSRF, sign out; and the sign-in form refused from another origin or with a run key."""

from __future__ import annotations

import uuid

import httpx
import pytest

from grid.client.remote import RemoteClient
from tests.team import new_user
from tests.web import chromium_or_skip, sign_in

pytestmark = pytest.mark.slow
chromium_or_skip()


@pytest.fixture
def people(team_server, tmp_path, monkeypatch):
    database, url = team_server
    team = f"t{uuid.uuid4().hex[:8]}"
    alice, alice_key = new_user(database, teams=(team,))
    bob, bob_key = new_user(database)
    monkeypatch.setenv("GRID_FSYNC", "0")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("x")
    names = {}
    for who, key, name in (
        (alice, alice_key, "cats"),
        (bob, bob_key, f"bobs-{uuid.uuid4().hex[:6]}"),
    ):
        with RemoteClient(url, key, str(tmp_path / who)) as c:
            c.create(str(src), name)
        names[who] = name
    with RemoteClient(url, alice_key, str(tmp_path / alice)) as c:
        c.create(str(src), f"{team}/dogs")
    return url, team, (alice, alice_key), (bob, bob_key), names


def test_sign_in_see_your_own_filter_csrf_and_sign_out(browser, people):
    url, team, (alice, alice_key), (bob, _), names = people
    context = browser.new_context(base_url=url)
    page = context.new_page()
    try:
        page.goto("/ui/")
        assert page.url.endswith("/ui/sign-in")  # signed out: nothing but the sign-in page
        assert names[alice] not in page.content()
        page.get_by_label("Username").fill(alice)
        page.get_by_label("API key").fill(alice_key + "x")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").inner_text() == "Wrong username or API key."
        page.get_by_label("API key").fill(alice_key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/")
        table = page.locator("#datastores table")
        assert table.locator("td", has_text="cats").count() == 1
        assert table.locator("td", has_text="dogs").count() == 1 and team in table.inner_text()
        assert names[bob] not in page.content()  # another user's: never shown
        (cookie,) = context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["value"] != alice_key  # a session key, not hers

        page.get_by_label("Filter by name").fill("zzz")
        page.get_by_text("No datastore matches").wait_for()
        page.get_by_label("Filter by name").fill("do")
        page.locator("#datastores td", has_text="dogs").wait_for()
        assert page.locator("#datastores td", has_text="cats").count() == 0

        forged = context.request.post(f"{url}/ui/sign-out")  # the cookie, not the token
        assert forged.status == 403 and forged.json()["code"] == "forbidden"
        page.reload()
        assert page.url.endswith("/ui/")  # still signed in: nothing was revoked

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/ui/sign-in")
        with httpx.Client(base_url=url, cookies={"grid_session": cookie["value"]}) as old:
            assert old.get("/v1/whoami").status_code == 401  # the session key is revoked
        page.goto("/ui/")
        assert page.url.endswith("/ui/sign-in")
    finally:
        context.close()


def test_the_sign_in_form_is_refused_from_elsewhere_and_to_run_keys(people):
    url, _, (alice, alice_key), _, _ = people
    form = {"username": alice, "key": alice_key}
    evil = httpx.post(f"{url}/ui/sign-in", data=form, headers={"Origin": "http://evil.test"})
    assert evil.status_code == 403 and "grid_session" not in evil.cookies
    ok = httpx.post(f"{url}/ui/sign-in", data=form, headers={"Origin": url})
    assert ok.status_code == 303 and "grid_session" in ok.cookies
    wrong_user = httpx.post(f"{url}/ui/sign-in", data={**form, "username": "someone"})
    assert wrong_user.status_code == 401 and "grid_session" not in wrong_user.cookies
    run = httpx.post(
        f"{url}/v1/runs",
        headers={"Authorization": f"Bearer {alice_key}"},
        json={"kind": "run", "command": ["x"], "executor": "local", "host": "h", "pid": 1},
    ).json()
    key = httpx.post(
        f"{url}/v1/runs/{run['id']}/key", headers={"Authorization": f"Bearer {alice_key}"}, json={}
    ).json()["key"]
    as_run = httpx.post(f"{url}/ui/sign-in", data={**form, "key": key})
    assert as_run.status_code == 401 and "grid_session" not in as_run.cookies
    static = httpx.get(f"{url}/ui/static/htmx.min.js")
    assert static.status_code == 200 and "htmx" in static.text[:200]
    assert httpx.get(f"{url}/ui/static/..%2Fweb.py").status_code == 404


def test_a_datastores_versions_their_runs_and_delete(browser, people):
    url, _, (alice, alice_key), _, _ = people
    auth = {"Authorization": f"Bearer {alice_key}"}
    body = {
        "kind": "run", "name": "trainer", "command": ["x"], "executor": "local", "host": "h",
        "pid": 1, "lease_seconds": 600, "datastores": [{"datastore": "cats", "version": 1}],
    }  # fmt: skip
    run = httpx.post(f"{url}/v1/runs", headers=auth, json=body).json()
    context = browser.new_context(base_url=url)
    page = context.new_page()
    try:
        sign_in(page, alice, alice_key)
        page.get_by_role("link", name="cats").click()
        page.wait_for_url(f"**/ui/datastores/{alice}/cats")
        row = page.locator("#version-1")
        assert "succeeded" in row.inner_text() and "trainer" in row.inner_text()
        page.get_by_role("link", name="Runs and sessions").click()
        page.wait_for_url("**/ui/runs")
        listed = page.locator(f"#run-{run['id']}").inner_text()
        assert "trainer" in listed and "queued" in listed and "cats:1" in listed
        page.go_back()
        page.on("dialog", lambda dialog: dialog.accept())  # "Delete cats:1? ..."
        page.get_by_role("button", name="Delete version 1").click()
        alert = page.get_by_role("alert")
        alert.filter(has_text="in use by run").wait_for()
        assert "trainer" in alert.inner_text()
        assert page.locator("#version-1").count() == 1  # refused: nothing deleted
        done = httpx.patch(f"{url}/v1/runs/{run['id']}", headers=auth, json={"status": "succeeded"})
        assert done.status_code == 200
        page.get_by_role("button", name="Delete version 1").click()
        page.get_by_text("No versions left.").wait_for()
        left = httpx.get(f"{url}/v1/datastores/{alice}/cats/versions", headers=auth)
        assert left.status_code == 404 or left.json() == []
    finally:
        context.close()
