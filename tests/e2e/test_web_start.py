"""Starting runs from the web page in a real browser: datastores picked from dropdowns (the
version defaults to the latest), the run executed by a server whose operator allowed it, its
status and log on the page; a server that does not run code shows the command to type."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from grid.client.remote import RemoteClient
from tests.team import new_user
from tests.web import chromium_or_skip, grid_server, signed_in

pytestmark = pytest.mark.slow
chromium_or_skip()


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A server that starts runs (local executor)."""
    with grid_server(tmp_path_factory.mktemp("web-start"), "", "--run-executor", "local") as s:
        yield s


def _cats(url: str, key: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GRID_FSYNC", "0")
    src = tmp_path / "cats"
    src.mkdir()
    with RemoteClient(url, key, str(tmp_path / "home")) as c:
        for text in ("version one", "version two"):
            (src / "a.txt").write_text(text)
            c.create(str(src), "cats")


def test_start_a_run_with_a_picked_version_and_read_its_log(browser, runner, tmp_path, monkeypatch):
    database, url = runner
    alice, alice_key = new_user(database)
    _cats(url, alice_key, tmp_path, monkeypatch)
    with signed_in(browser, url, alice, alice_key) as page:
        page.get_by_role("link", name="Runs and sessions").click()
        page.get_by_role("link", name="Start a run or session").click()
        assert page.get_by_label("Datastore", exact=True).input_value() == "cats"
        versions = page.get_by_label("Version").locator("option").all_inner_texts()
        assert versions == ["latest (2)", "2", "1"]
        page.get_by_label("Version").select_option("1")
        page.get_by_label("Name (optional)").fill("reader")
        page.get_by_label("Command (runs only)").fill(
            'cat "$GRID_DATASTORE_CATS/a.txt"; echo; echo "at $GRID_DATASTORE_CATS"'
        )
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/ui/runs")
        row = page.locator("tr", has_text="reader")
        row.get_by_text("succeeded").wait_for(timeout=60_000)
        assert "cats:1" in row.inner_text()
        row.get_by_role("link", name="Log").click()
        log = page.get_by_label("Log").inner_text()
        assert "version one" in log and "at /datastores/cats/1" in log
        assert "exit code 0" in page.content()

        page.goto("/ui/runs/new")
        page.get_by_role("button", name="Start").click()  # a run without a command
        page.get_by_text("Not started: a run needs a command").wait_for()


def test_a_server_that_runs_no_code_shows_the_command(browser, team_server, tmp_path, monkeypatch):
    database, url = team_server
    alice, alice_key = new_user(database)
    _cats(url, alice_key, tmp_path, monkeypatch)
    with signed_in(browser, url, alice, alice_key) as page:
        page.goto("/ui/runs/new")
        page.get_by_label("Command (runs only)").fill("python train.py --lr 0.1")
        page.get_by_role("button", name="Start").click()
        command = page.locator("#command")
        command.wait_for()
        want = "grid run --datastore cats sh -c 'python train.py --lr 0.1'"
        assert command.inner_text() == want
        forged = page.request.post("/ui/runs", form={"kind": "run", "command": "id"})
        assert forged.status == 403  # the cookie without the page's CSRF token


def test_start_a_session_open_its_lab_and_stop_it(browser, runner, tmp_path, monkeypatch):
    database, url = runner
    alice, alice_key = new_user(database)
    _cats(url, alice_key, tmp_path, monkeypatch)
    with signed_in(browser, url, alice, alice_key) as page:
        page.on("dialog", lambda dialog: dialog.accept())  # "Stop session N (nb)?"
        page.goto("/ui/runs/new")
        page.get_by_label("Session (JupyterLab)").check()
        page.get_by_label("Name (optional)").fill("nb")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/ui/runs", timeout=120_000)
        row = page.locator("tr", has_text="nb")
        lab = row.get_by_role("link", name="Open JupyterLab")
        href = lab.get_attribute("href")
        assert href is not None and "token=" in href
        assert httpx.get(href, follow_redirects=True, timeout=30).status_code == 200
        assert "cats:2" in row.inner_text()  # the latest, by default
        row.get_by_role("button", name="Stop").click()
        row.get_by_text("stopped").wait_for(timeout=60_000)
        assert row.get_by_role("link", name="Open JupyterLab").count() == 0
