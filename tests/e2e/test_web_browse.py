"""A version in a real browser: folders a page at a time (a 450-entry folder in pages of
200), previews of text, CSV, Parquet and images, a download with the file's exact bytes, the
diff of two versions as a page; another user and a signed-out browser see nothing of it."""

from __future__ import annotations

import struct
import zlib

import httpx
import pytest

from grid.client.remote import RemoteClient
from tests.team import new_user
from tests.web import chromium_or_skip, sign_in, signed_in

pytestmark = pytest.mark.slow
chromium_or_skip()


def _png(width: int, height: int) -> bytes:
    """A real PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\0" + b"\x20\x80\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def two_versions(team_server, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    database, url = team_server
    alice, alice_key = new_user(database)
    bob, bob_key = new_user(database)
    monkeypatch.setenv("GRID_FSYNC", "0")
    src = tmp_path / "src"
    (src / "big").mkdir(parents=True)
    for i in range(450):
        (src / "big" / f"f{i:04d}.txt").write_text(f"file {i}\n")
    (src / "notes.txt").write_text("hello <b>not bold</b>\n" * 10)
    (src / "table.csv").write_text("city,people\nParis,2100000\nLyon,520000\n")
    (src / "pic.png").write_bytes(_png(40, 30))
    (src / "evil.html").write_text("<script>alert(1)</script>")
    pq.write_table(pa.table({"id": [1, 2, 3], "label": ["cat", "dog", "eel"]}), src / "d.parquet")
    with RemoteClient(url, alice_key, str(tmp_path / "home")) as c:
        c.create(str(src), "zoo")
        (src / "big" / "f0007.txt").write_text("changed\n")
        (src / "table.csv").unlink()
        (src / "added.txt").write_text("new")
        c.create(str(src), "zoo")
    return url, (alice, alice_key), (bob, bob_key), src


def test_browse_page_preview_download_and_diff(browser, two_versions):
    url, (alice, alice_key), _, src = two_versions
    context = browser.new_context(base_url=url, accept_downloads=True)
    page = context.new_page()
    try:
        sign_in(page, alice, alice_key)
        page.get_by_role("link", name="zoo").click()
        page.get_by_role("link", name="Browse version 1").click()
        assert "6 entries" in page.locator("#count").inner_text()
        page.get_by_role("link", name="big/").click()
        assert "450 entries; showing 200 from the first" in page.locator("#count").inner_text()
        names = page.locator("tbody td:first-child a").all_inner_texts()
        assert names == [f"f{i:04d}.txt" for i in range(200)]
        page.get_by_role("link", name="Next 200").click()
        names = page.locator("tbody td:first-child a").all_inner_texts()
        assert names == [f"f{i:04d}.txt" for i in range(200, 400)]
        page.get_by_role("link", name="Next 200").click()
        names = page.locator("tbody td:first-child a").all_inner_texts()
        assert names == [f"f{i:04d}.txt" for i in range(400, 450)]
        assert page.get_by_role("link", name="Next", exact=False).count() == 0
        assert "-rw-r--r--" in page.locator("tbody").inner_text()

        page.get_by_role("link", name="f0449.txt").click()
        assert page.locator("pre.preview").inner_text() == "file 449\n"
        page.get_by_role("navigation", name="Folder").get_by_role("link", name="1").click()
        page.get_by_role("link", name="notes.txt").click()
        assert "hello <b>not bold</b>" in page.locator("pre.preview").inner_text()  # escaped
        with page.expect_download() as download:
            page.get_by_role("link", name="Download").click()
        assert download.value.path().read_bytes() == (src / "notes.txt").read_bytes()
        page.go_back()
        page.get_by_role("link", name="table.csv").click()
        cells = page.locator("table.preview").inner_text()
        assert "city" in cells and "Paris" in cells and "520000" in cells
        page.go_back()
        page.get_by_role("link", name="d.parquet").click()
        cells = page.locator("table.preview").inner_text()
        assert "label" in cells and "eel" in cells and "3 of 3 rows" in page.content()
        page.go_back()
        page.get_by_role("link", name="pic.png").click()
        image = page.get_by_role("img", name="pic.png")
        image.wait_for()
        assert page.evaluate("document.querySelector('img.preview').naturalWidth") == 40

        base = f"/ui/datastores/{alice}/zoo/1/raw"
        shown = context.request.get(f"{base}?path=evil.html&download=false")
        assert shown.headers["content-type"] == "application/octet-stream"  # never run
        assert shown.headers["content-disposition"].startswith("attachment")
        image = context.request.get(f"{base}?path=pic.png&download=false")
        assert image.headers["content-type"] == "image/png"
        assert "sandbox" in image.headers["content-security-policy"]
        assert image.body() == (src / "pic.png").read_bytes()
        missing = context.request.get(f"/ui/datastores/{alice}/zoo/1/file?path=nope.txt")
        assert missing.status == 404 and missing.json()["code"] == "path_not_found"

        page.goto(f"/ui/datastores/{alice}/zoo/2")
        page.get_by_label("Compare with version").select_option("1")
        page.get_by_role("button", name="Compare").click()
        page.wait_for_url("**/diff?**")
        summary = page.locator("#summary").inner_text()
        assert summary.startswith("1 added") and "1 removed" in summary
        assert "1 modified" in summary
        changes = page.locator("tr.change").all_inner_texts()
        assert any("added.txt" in c and c.startswith("+") for c in changes)
        assert any("table.csv" in c and c.startswith("-") for c in changes)
        assert any("big/f0007.txt" in c and c.startswith("M") for c in changes)
    finally:
        context.close()


def test_another_user_and_a_signed_out_browser_see_nothing(two_versions):
    url, (alice, _), (bob, bob_key), _ = two_versions
    paths = [
        f"/ui/datastores/{alice}/zoo/1",
        f"/ui/datastores/{alice}/zoo/1/file?path=notes.txt",
        f"/ui/datastores/{alice}/zoo/1/raw?path=notes.txt",
        f"/ui/datastores/{alice}/zoo/diff?a=1&b=2",
    ]
    with httpx.Client(base_url=url) as anon:
        for path in paths:
            r = anon.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/ui/sign-in"
    with httpx.Client(base_url=url) as browser_of_bob:
        signed = browser_of_bob.post("/ui/sign-in", data={"username": bob, "key": bob_key})
        assert signed.status_code == 303
        for path in paths:
            r = browser_of_bob.get(path)
            assert r.status_code == 404, path
            assert alice not in r.text and "notes" not in r.text


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')].filter(el =>
    !((el.labels && el.labels.length) || el.getAttribute('aria-label')
      || (el.tagName === 'BUTTON' && el.textContent.trim()))).map(el => el.outerHTML)"""


def test_on_a_phone_no_page_scrolls_sideways_every_control_has_a_label_and_keys_work(
    browser, two_versions
):
    url, (alice, alice_key), _, _ = two_versions
    phone = {"viewport": {"width": 390, "height": 844}}
    with signed_in(browser, url, alice, alice_key, **phone) as page:
        base = f"/ui/datastores/{alice}/zoo"
        for path in (
            "/ui/", base, f"{base}/1", f"{base}/1/file?path=table.csv", f"{base}/diff?a=1&b=2",
            "/ui/runs", "/ui/runs/new",
        ):  # fmt: skip
            page.goto(path)
            sideways = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert sideways == 0, path
            assert page.evaluate(UNLABELLED) == [], path
        page.goto("/ui/")
        drop = page.locator("#drop")
        assert drop.evaluate("e => e.tabIndex") == 0  # in the tab order
        drop.focus()  # (tabbing there: the live table refreshing can move the focus)
        page.evaluate(
            "document.getElementById('pick-files').addEventListener('click', e => {"
            " e.preventDefault(); window.picked = true; })"
        )  # the file picker it opens (headless chromium shows none)
        page.keyboard.press("Enter")
        assert page.evaluate("window.picked === true")
