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
import subprocess
import sys
import tempfile
import time
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


def _data(root: Path, files: int) -> Path:
    root.mkdir(parents=True)
    for i in range(files):
        folder = root / f"class_{i % 4}"
        folder.mkdir(exist_ok=True)
        (folder / f"img_{i:04d}.jpg").write_bytes(os.urandom(2000 + 97 * i))
    return root


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
        [*GRID, "server", "--port", str(port), "--storage-url", str(work / "objects")],
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
                page.screenshot(path=str(OUT / f"datastores{suffix}.png"), full_page=True)
                page.goto(f"{url}/ui/datastores/alice/cats")
                page.screenshot(path=str(OUT / f"datastore{suffix}.png"), full_page=True)
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"screenshots in {OUT}/ (server data left in {work})")


if __name__ == "__main__":
    main()
