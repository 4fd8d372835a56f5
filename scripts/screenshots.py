#!/usr/bin/env python3
"""Take the README's screenshots of the web pages (docs/screenshots/*.png).

Starts a throwaway `grid server` (SQLite, a storage folder, a free 127.0.0.1 port) with a user
and a team, makes a few datastores (one failed, one used by a run), and drives Debian's
chromium (Playwright) through the pages at 1280 px and at a phone's 390 px. Run from the
repository root: `.venv/bin/python scripts/screenshots.py`.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from grid.client.remote import RemoteClient

OUT = Path("docs/screenshots")
GRID = [sys.executable, "-m", "grid"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _grid(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [*GRID, *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def _png(width: int, height: int) -> bytes:
    """A small gradient PNG (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\0" + b"".join(bytes((x * 4 % 256, y * 4 % 256, 160)) for x in range(width))
        for y in range(height)
    )
    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", head)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _data(root: Path, files: int) -> Path:
    root.mkdir(parents=True)
    for i in range(files):
        folder = root / f"class_{i % 4}"
        folder.mkdir(exist_ok=True)
        (folder / f"img_{i:04d}.jpg").write_bytes(os.urandom(2000 + 97 * i))
    (root / "labels.csv").write_text(
        "file,label,split\n"
        + "".join(
            f"class_{i % 4}/img_{i:04d}.jpg,{i % 4},{'train' if i % 5 else 'val'}\n"
            for i in range(files)
        )
    )
    (root / "sample.png").write_bytes(_png(64, 64))
    (root / "README.txt").write_text(f"{files} images in 4 classes.\n")
    return root


def _check_phone(page, name: str) -> None:
    """Warn when a page scrolls sideways on a phone."""
    wide = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    if wide > 0:
        print(f"warning: {name} scrolls sideways by {wide}px on a phone", file=sys.stderr)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="grid-screens-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    database = f"sqlite:///{work / 'server.db'}"
    env = {**os.environ, "GRID_DATABASE_URL": database, "GRID_FSYNC": "0", "GRID_HOME": str(work)}
    user = json.loads(_grid(env, "admin", "user", "create", "alice", "--json"))
    key = user["api_key"]
    _grid(env, "admin", "team", "create", "vision")
    _grid(env, "admin", "team", "add", "vision", "alice")
    server = subprocess.Popen(
        [
            *GRID,
            "server",
            "--port",
            str(port),
            "--storage-url",
            str(work / "objects"),
            "--allow-private-urls",
            "--run-executor",
            "local",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/v1/health")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with RemoteClient(url, key, str(work / "client")) as client:
            client.create(str(_data(work / "cats", 120)), "cats")
            client.create(str(_data(work / "cats2", 160)), "cats")
            client.create(str(_data(work / "pets", 60)), "vision/pets")
        auth = {"Authorization": f"Bearer {key}"}
        run = {
            "kind": "run", "name": "resnet-baseline", "command": ["train.py"],
            "executor": "slurm", "host": "gpu-node-3", "pid": 1, "lease_seconds": 600,
            "datastores": [{"datastore": "cats", "version": 2}],
        }  # fmt: skip
        httpx.post(f"{url}/v1/runs", headers=auth, json=run).raise_for_status()
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-dev-shm-usage"],
            )
            for width, height, suffix in ((1280, 720, ""), (390, 844, "-phone")):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{url}/ui/sign-in")
                page.screenshot(path=str(OUT / f"sign-in{suffix}.png"))
                page.get_by_label("Username").fill("alice")
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/ui/")
                if not suffix:  # an upload, for the datastores page to show it
                    page.get_by_label("Datastore name").fill("dogs")
                    page.get_by_label("Pick a folder").set_input_files(
                        str(_data(work / "dogs", 90))
                    )
                    page.get_by_role("button", name="Upload").click()
                    page.get_by_role("status").filter(has_text="dogs:1 succeeded").wait_for()
                shots = [
                    ("datastores", f"{url}/ui/"),
                    ("datastore", f"{url}/ui/datastores/alice/cats"),
                    ("folder", f"{url}/ui/datastores/alice/cats/2/?path=class_1"),
                    ("preview-csv", f"{url}/ui/datastores/alice/cats/2/file?path=labels.csv"),
                    ("preview-image", f"{url}/ui/datastores/alice/cats/2/file?path=sample.png"),
                    ("diff", f"{url}/ui/datastores/alice/cats/diff?a=1&b=2"),
                    ("runs", f"{url}/ui/runs"),
                    ("run-start", f"{url}/ui/runs/new"),
                ]
                for name, address in shots:
                    page.goto(address.replace("/2/?", "/2?"))
                    page.screenshot(path=str(OUT / f"{name}{suffix}.png"), full_page=True)
                    if suffix:
                        _check_phone(page, name)
                if not suffix:  # a real run from the form, and its log
                    page.get_by_label("Name (optional)").fill("count-images")
                    page.get_by_label("Command (runs only)").fill(
                        'ls -R "$GRID_DATASTORE_CATS" | grep -c jpg; '
                        'head -3 "$GRID_DATASTORE_CATS/labels.csv"'
                    )
                    page.get_by_role("button", name="Start").click()
                    page.wait_for_url("**/ui/runs")
                    row = page.locator("tr", has_text="count-images")
                    row.get_by_text("succeeded").wait_for(timeout=60_000)
                    page.screenshot(path=str(OUT / "runs.png"), full_page=True)
                    row.get_by_role("link", name="Log").click()
                    page.screenshot(path=str(OUT / "run-log.png"), full_page=True)
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"screenshots in {OUT}/ (server data left in {work})")


if __name__ == "__main__":
    main()
