#!/usr/bin/env python3
"""Benchmark the web pages: a browser's upload against the CLI's create of the same folder,
and the page of a 100,000-entry folder against ``grid datastore ls`` of it.

1. Upload. The ``small`` dataset (ImageNet-like files of 2-200 KiB in 100 class folders;
   default 3,000 files, ``--small-files``) picked with "Pick a folder" on the datastores page
   of a one-machine ``grid server`` (SQLite, a storage folder, ``GRID_FSYNC=0``) in Debian's
   chromium driven by Playwright, timed from the click on Upload to the status line saying
   the version succeeded (the tar stream built in the page, its parts sent, the server's
   import). Rows, all on the same data in the same run:

     limit        ``tar cf - small | cat``: reading every byte once (page cache warm)
     ours         the page's upload (a new datastore), then the same folder again (dedup)
     alternative  ``grid datastore create small`` logged in to the same server (the CLI
                  chunks and packs on the client and uploads packs), then again

   "stored" is the version's stored bytes: a second upload of the same folder stores a
   manifest only, like the CLI's second create.

2. Browse. A version with one folder of 100,000 empty files (``--entries``), made by the CLI
   from a folder on disk. Timed with httpx (signed in with the session cookie): the first
   page of the folder from a fresh server (the manifest fetched into the server's reading
   cache), the next page, and the last page; against ``grid datastore ls NAME:1 big`` (the
   whole listing in one command, start-up included). Median of ``--repeat``.

Needs chromium (``scripts/install.sh`` installs it) and Playwright (the test extra). Run from
the repository root::

    .venv/bin/python bench/web_bench.py --quick      # 500 files, 20,000 entries
    .venv/bin/python bench/web_bench.py              # 3,000 files, 100,000 entries

Numbers on shared 2-core VMs are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from harness import MB, Timer, ensure_small, grid_cli, median_of, remove_dataset, table, tree_size

CHROMIUM = "/usr/bin/chromium"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(work: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A one-machine server with a user: (URL, API key, env of a logged-in CLI)."""
    work.mkdir(parents=True)
    env = {**os.environ, "GRID_HOME": str(work / "server-home"), "GRID_FSYNC": "0"}
    database = f"sqlite:///{work / 'server.db'}"
    made = subprocess.run(
        [*grid_cli(), "admin", "user", "create", "bench", "--json", "--database-url", database],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    key = json.loads(made.stdout)["api_key"]
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*grid_cli(), "server", "--database-url", database, "--port", str(port),
         "--storage-url", str(work / "objects")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v1/health").status_code == 200:
                    break
            time.sleep(0.1)
        client_env = {
            **os.environ, "GRID_HOME": str(work / "cli-home"), "GRID_URL": url,
            "GRID_API_KEY": key, "GRID_FSYNC": "0",
        }  # fmt: skip
        yield url, key, client_env
    finally:
        proc.terminate()
        proc.wait(30)


def _stored(url: str, key: str, name: str) -> tuple[int, int]:
    versions = httpx.get(
        f"{url}/v1/datastores/bench/{name}/versions", headers={"Authorization": f"Bearer {key}"}
    ).json()
    return versions[-1]["number"], versions[-1]["stored_bytes"]


def _browser_upload(url: str, key: str, folder: Path, name: str, times: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{url}/ui/sign-in")
        page.get_by_label("Username").fill("bench")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/")
        for n in range(1, times + 1):
            page.reload()
            page.get_by_label("Datastore name").fill(name)
            page.get_by_label("Pick a folder").set_input_files(str(folder))
            with Timer() as t:
                page.get_by_role("button", name="Upload").click()
                done = page.get_by_role("status").filter(has_text=f"{name}:{n} succeeded")
                done.wait_for(timeout=1_800_000)
            out.append(t.seconds)
        browser.close()
    return out


def _cli_create(env: dict[str, str], folder: Path, name: str) -> float:
    with Timer() as t:
        subprocess.run(
            [*grid_cli(), "datastore", "create", str(folder), "--name", name],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    return t.seconds


def _read_limit(folder: Path) -> float:
    with Timer() as t:
        subprocess.run(
            f"tar cf - -C {folder.parent} {folder.name} | cat > /dev/null", shell=True, check=True
        )
    return t.seconds


def upload(work: Path, folder: Path) -> None:
    files, size = tree_size(folder)
    _read_limit(folder)  # warm the page cache
    limit = _read_limit(folder)
    with _server(work / "upload") as (url, key, env):
        first, again = _browser_upload(url, key, folder, "page", 2)
        stored_page = [_stored(url, key, "page")[1]]
        cli = [_cli_create(env, folder, "cli"), _cli_create(env, folder, "cli")]
        stored_cli = _stored(url, key, "cli")[1]
    rows = [
        ["`tar cf - | cat` (limit)", f"{limit:.2f}", f"{size / MB / limit:,.0f}", "-"],
        ["**web page upload**", f"{first:.2f}", f"{size / MB / first:,.0f}", "-"],
        ["web page, same folder again", f"{again:.2f}", f"{size / MB / again:,.0f}",
         f"{stored_page[0] / 1000:,.0f} kB"],
        ["`grid datastore create` (CLI, logged in)", f"{cli[0]:.2f}",
         f"{size / MB / cli[0]:,.0f}", "-"],
        ["CLI, same folder again", f"{cli[1]:.2f}", f"{size / MB / cli[1]:,.0f}",
         f"{stored_cli / 1000:,.0f} kB"],
    ]  # fmt: skip
    print(f"\nupload of {files:,} files, {size / MB:,.0f} MB")
    print(table(["", "seconds", "MB/s", "stored"], rows))


def browse(work: Path, entries: int, repeat: int) -> None:
    big = work / "entries" / "big"
    big.mkdir(parents=True)
    for i in range(entries):
        (big / f"f{i:07d}").touch()
    with _server(work / "browse") as (url, key, env):
        subprocess.run(
            [*grid_cli(), "datastore", "create", str(work / "entries"), "--name", "wide"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        with httpx.Client(base_url=url) as web:
            web.post("/ui/sign-in", data={"username": "bench", "key": key})
            path = "/ui/datastores/bench/wide/1?path=big"
            with Timer() as t:
                first = web.get(path)
            assert f"{entries:,} entries" in first.text, first.text[:500]
            last_name = f"f{entries - 201:07d}"

            def page(after: str) -> float:
                with Timer() as t:
                    r = web.get(f"{path}&after={after}")
                assert r.status_code == 200
                return t.seconds

            next_page, _ = median_of(lambda: page("f0000199"), repeat)
            last_page, _ = median_of(lambda: page(last_name), repeat)

        def ls() -> float:
            with Timer() as t:
                subprocess.run(
                    [*grid_cli(), "datastore", "ls", "wide:1", "big"],
                    env=env, check=True, capture_output=True,
                )  # fmt: skip
            return t.seconds

        cli, _ = median_of(ls, repeat)
    rows = [
        ["**page 1 (fresh server: manifest fetched)**", f"{t.seconds * 1000:,.0f}"],
        ["**the next page**", f"{next_page * 1000:,.0f}"],
        ["**the last page**", f"{last_page * 1000:,.0f}"],
        [f"`grid datastore ls` (all {entries:,}, CLI start included)", f"{cli * 1000:,.0f}"],
    ]
    print(f"\na folder of {entries:,} entries, pages of 200 (median of {repeat})")
    print(table(["", "ms"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 files, 20,000 entries")
    parser.add_argument("--small-files", type=int, default=3000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", default="/tmp/grid-bench-data", help="dataset root")
    parser.add_argument("--tmp", default="/tmp", help="where the servers' files go")
    parser.add_argument("--keep-data", action="store_true")
    args = parser.parse_args()
    files = 500 if args.quick else args.small_files
    entries = 20_000 if args.quick else args.entries
    folder, made = ensure_small(Path(args.data), files)
    work = Path(tempfile.mkdtemp(prefix="grid-web-bench-", dir=args.tmp))
    try:
        upload(work, folder)
        browse(work, entries, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if made and not args.keep_data:
            remove_dataset(folder)


if __name__ == "__main__":
    main()
