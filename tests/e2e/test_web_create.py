"""Making versions from the web page in a real browser: a folder of a few hundred files
picked (webkitdirectory) and uploaded to ``succeeded``; an upload stopped by a reload resumes
where it stopped (only the missing parts are sent, into the same version); a re-upload of the
same folder stores nothing new; an archive URL served on loopback imported with live
progress; another user sees none of it; a request without the page's CSRF token is refused."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator

import httpx
import pytest

from grid.service.staged_upload import PART_SIZE
from tests.archive_server import ArchiveServer
from tests.team import new_user
from tests.web import chromium_or_skip, grid_server, sign_in

pytestmark = pytest.mark.slow
chromium_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A server that may fetch archives from loopback (the test's HTTP server)."""
    with grid_server(tmp_path_factory.mktemp("web-create"), "", "--allow-private-urls") as s:
        yield s


def _folder(root, name: str, count: int, size: int):
    folder = root / name
    (folder / "sub").mkdir(parents=True)
    for i in range(count):
        (folder / ("sub" if i % 3 == 0 else "") / f"item-{i:04d}.bin").write_bytes(os.urandom(size))
    (folder / ("ünïcode name with spaces and a long tail " + "x" * 120 + ".txt")).write_text("ok")
    return folder


def _versions(url: str, key: str, user: str, name: str) -> list[dict]:
    r = httpx.get(
        f"{url}/v1/datastores/{user}/{name}/versions", headers={"Authorization": f"Bearer {key}"}
    )
    return r.json() if r.status_code == 200 else []


def test_upload_a_folder_then_again_with_nothing_new(browser, server, tmp_path):
    database, url = server
    alice, alice_key = new_user(database)
    bob, bob_key = new_user(database)
    folder = _folder(tmp_path, "photos", 300, 2000)
    context = browser.new_context(base_url=url)
    page = context.new_page()
    try:
        sign_in(page, alice, alice_key)
        page.get_by_label("Pick a folder").set_input_files(str(folder))
        assert "301 files" in page.locator("#picked").inner_text()
        assert page.get_by_label("Datastore name").get_attribute("placeholder") == "photos"
        page.get_by_role("button", name="Upload").click()
        page.get_by_role("status").filter(has_text="photos:1 succeeded").wait_for(timeout=60_000)
        page.locator("#datastores td", has_text="photos").wait_for()
        (v1,) = _versions(url, alice_key, alice, "photos")
        assert v1["status"] == "succeeded" and v1["files"] == 301

        page.reload()
        page.get_by_label("Pick a folder").set_input_files(str(folder))
        page.get_by_role("button", name="Upload").click()
        page.get_by_role("status").filter(has_text="photos:2 succeeded").wait_for(timeout=60_000)
        v2 = _versions(url, alice_key, alice, "photos")[-1]
        assert v2["stored_bytes"] < v1["stored_bytes"] // 20  # the same data: a manifest only

        page.goto(f"/ui/datastores/{alice}/photos/2")
        assert "202 entries" in page.locator("#count").inner_text()
        page.get_by_role("link", name="Next 200").click()
        assert "ünïcode name" in page.locator("tbody").inner_text()
        page.get_by_role("link", name="sub/").click()
        assert "100 entries" in page.locator("#count").inner_text()
    finally:
        context.close()

    other = browser.new_context(base_url=url)
    page = other.new_page()
    try:
        sign_in(page, bob, bob_key)
        assert "photos" not in page.locator("#datastores").inner_text()
        r = other.request.get(f"/ui/datastores/{alice}/photos/1")
        ghost = other.request.get(f"/ui/datastores/{alice}/ghost/1")
        assert r.status == ghost.status == 404  # as if it did not exist
        assert r.text().replace("photos", "X") == ghost.text().replace("ghost", "X")
    finally:
        other.close()


def test_a_reloaded_upload_resumes_where_it_stopped(browser, server, tmp_path):
    database, url = server
    alice, alice_key = new_user(database)
    folder = _folder(tmp_path, "big", 12, 2 * 1024 * 1024)  # 24 MiB: 3 parts and a bit
    context = browser.new_context(base_url=url)
    page = context.new_page()
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    try:
        sign_in(page, alice, alice_key)
        page.get_by_label("Datastore name").fill("big")

        def first_part_only(route):
            if route.request.url.endswith("/parts/0"):
                route.continue_()
            else:
                route.abort("connectionreset")  # the network drops for the other parts

        page.route("**/parts/*", first_part_only)
        with page.expect_response(lambda r: r.url.endswith("/parts/0")) as first:
            page.get_by_label("Pick a folder").set_input_files(str(folder))
            page.get_by_role("button", name="Upload").click()
        assert first.value.status == 204
        page.get_by_text("trying again").wait_for()
        (held,) = _versions(url, alice_key, alice, "big")
        assert held["status"] == "uploading" and held["progress_done"] == PART_SIZE

        page.unroute("**/parts/*")
        page.reload()  # the upload in flight is gone; the page says how to resume
        status = page.get_by_role("status").first
        assert "did not finish" in page.locator("#upload-status").inner_text()
        assert page.get_by_label("Datastore name").input_value() == "big"
        puts.clear()
        page.get_by_label("Pick a folder").set_input_files(str(folder))
        page.get_by_role("button", name="Upload").click()
        page.get_by_role("status").filter(has_text="big:1 succeeded").wait_for(timeout=60_000)
        assert status is not None
        parts = -(-held["progress_total"] // PART_SIZE)
        sent = sorted(int(u.rsplit("/", 1)[-1]) for u in puts)
        assert sent == list(range(1, parts))  # part 0 was not sent again
        (done,) = _versions(url, alice_key, alice, "big")
        assert done["number"] == held["number"] and done["status"] == "succeeded"
        assert done["size"] == sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    finally:
        context.close()


def test_import_an_archive_url_with_progress_and_csrf(browser, server, tmp_path):
    database, url = server
    alice, alice_key = new_user(database)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for i in range(50):
            blob = os.urandom(10_000)
            info = tarfile.TarInfo(f"set/part-{i}.bin")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with ArchiveServer() as archives:
        archives.served.files["/mnist.tar.gz"] = data.getvalue()
        context = browser.new_context(base_url=url)
        page = context.new_page()
        try:
            sign_in(page, alice, alice_key)
            page.get_by_label("Archive URL or s3:// prefix").fill(archives.url("/mnist.tar.gz"))
            page.get_by_role("button", name="Import").click()
            page.locator("#import-status", has_text="mnist:1 succeeded").wait_for(timeout=60_000)
            assert "50 files" in page.locator("#import-status").inner_text()
            page.locator("#datastores td", has_text="mnist").wait_for()

            page.get_by_label("Archive URL or s3:// prefix").fill("ftp://nowhere/x.tar")
            page.get_by_role("button", name="Import").click()
            page.locator("#import-status", has_text="Import failed").wait_for()

            forged = context.request.post(  # the cookie, not the page's token
                f"/v1/datastores/{alice}/forged/uploads",
                data={"size": 10, "files": 1, "fingerprint": "fp-forged-1"},
            )
            assert forged.status == 403 and forged.json()["code"] == "forbidden"
            assert _versions(url, alice_key, alice, "forged") == []
        finally:
            context.close()
