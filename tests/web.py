"""Driving the web pages in a real browser: Debian's chromium under Playwright (installed by
scripts/install.sh), headless, as root without its sandbox."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"


def chromium_or_skip() -> Any:
    """Playwright's sync API, or skip the module where chromium is missing."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(
            "chromium is not installed (scripts/install.sh installs it)", allow_module_level=True
        )
    return pytest.importorskip("playwright.sync_api")


def launch(sync_api: Any) -> Iterator[Any]:
    """A headless chromium for a module's tests."""
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


def sign_in(page: Any, user: str, key: str) -> None:
    """Sign ``page`` in as ``user`` through the sign-in form."""
    page.goto("/ui/sign-in")
    page.get_by_label("Username").fill(user)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/")


@contextmanager
def signed_in(browser: Any, url: str, user: str, key: str, **options: Any) -> Iterator[Any]:
    """A page of a fresh browser context on ``url``, signed in as ``user``; closed after
    (``options``: the context's, e.g. ``viewport``)."""
    context = browser.new_context(base_url=url, **options)
    page = context.new_page()
    try:
        sign_in(page, user, key)
        yield page
    finally:
        context.close()


@contextmanager
def grid_server(root: Path, storage: str = "", *args: str, **env: str) -> Iterator[tuple[str, str]]:
    """A `grid server` of its own (SQLite in ``root``; ``storage`` default: a folder there),
    with extra ``args`` and ``env``: (database, URL)."""
    from tests.team import start_server, stop

    database = f"sqlite:///{root / 'server.db'}"
    with open(root / "server.log", "wb") as log:
        proc, url = start_server(
            database, storage or str(root / "objects"), root / "home", log, *args, **env
        )
        try:
            yield database, url
        finally:
            stop(proc)
