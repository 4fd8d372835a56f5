#!/usr/bin/env python3
"""Benchmark the CLI's start-up (issue 18): whole processes, wall clock, beside peers.

Rows: median and fastest wall time of ``--repeat`` runs, each a fresh process with its output
to /dev/null (a pipe's path: no terminal), and the median CPU time (user + system, steadier than
wall time on a busy machine):

  python -c pass             the interpreter alone (the project's venv)
  git --version, rclone --version, restic version   peers, where installed
  grid --help
  grid datastore list        embedded (GRID_HOME, SQLite catalog) with ``--datastores`` (100)
  grid datastore ls NAME:1 DIR   a folder of 50 files
  the same two logged in to a one-machine ``grid server`` (SQLite, a storage folder) on
  loopback, holding as many datastores

With ``--importtime`` each grid row is also run once under ``python -X importtime``, and its
heaviest top-level imports are printed. Run from the repository root::

    .venv/bin/python bench/startup_bench.py [--repeat 15] [--datastores 100] [--importtime]

Another revision (e.g. the one before issue 18) is measured the same way with its sources
first on the path: ``git archive REV src | tar -x -C /tmp/old`` then
``PYTHONPATH=/tmp/old/src .venv/bin/python bench/startup_bench.py``.

Numbers on shared 2-core VMs are noisy (check ``uptime``): compare rows of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness import REPO_ROOT, grid_cli, table, venv_python

TARGETS = {"grid --help": 120, "datastore list": 200, "datastore ls": 200}  # ms, issue 18
sys.path.insert(0, str(REPO_ROOT))  # tests.team starts a server as the tests do


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _measure(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[float, float, float]:
    """(median wall, fastest wall, median CPU) in ms over ``repeat`` runs after a warm one."""
    _run(cmd, env)  # warm: files in the page cache, .pyc written
    runs = [_run(cmd, env) for _ in range(repeat)]
    walls = [w for w, _ in runs]
    cpu = statistics.median(c for _, c in runs)
    return statistics.median(walls) * 1000, min(walls) * 1000, cpu * 1000


def _imports(grid_args: list[str], env: dict[str, str], top: int = 8) -> str:
    """The ``top`` heaviest top-level imports of ``grid GRID_ARGS``, in ms."""
    cmd = [venv_python(), "-X", "importtime", "-m", "grid", *grid_args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    found = []
    for line in p.stderr.splitlines():
        parts = line.split("|")
        top_level = parts[-1].startswith(" ") and not parts[-1].startswith("  ")
        if len(parts) == 3 and top_level and parts[1].strip().isdigit():
            found.append((int(parts[1]) / 1000, parts[2].strip()))
    found.sort(reverse=True)
    return ", ".join(f"{name} {ms:.0f}" for ms, name in found[:top])


def _tree(root: Path) -> Path:
    (root / "train").mkdir(parents=True)
    for i in range(50):
        (root / "train" / f"img{i:03d}.jpg").write_bytes(os.urandom(200 + i))
    (root / "labels.csv").write_text("a,b\n")
    return root


@contextlib.contextmanager
def _server(work: Path, datastores: int, src: Path) -> Iterator[dict[str, str]]:
    """A one-machine server holding ``datastores`` of the caller's; the CLI's env."""
    from tests.team import new_user, start_server, stop

    from grid.client.remote import RemoteClient

    work.mkdir(parents=True)
    database = f"sqlite:///{work / 'server.db'}"
    with open(work / "server.log", "wb") as log:
        proc, url = start_server(database, str(work / "storage"), work / "server-home", log)
        try:
            _, key = new_user(database, "bench")
            home = str(work / "cli-home")
            with RemoteClient(url, key, home) as client:
                for i in range(datastores):
                    client.create(str(src), f"ds{i:03d}")
            yield {"GRID_URL": url, "GRID_API_KEY": key, "GRID_HOME": home}
        finally:
            stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--datastores", type=int, default=100)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()

    import grid

    work = Path(tempfile.mkdtemp(prefix="grid-startup-"))
    base = {k: v for k, v in os.environ.items() if k not in ("GRID_URL", "GRID_API_KEY")}
    base.update(GRID_CONFIG_DIR=str(work / "config"), GRID_FSYNC="0")
    os.environ.update(GRID_FSYNC="0", GRID_CONFIG_DIR=base["GRID_CONFIG_DIR"])
    gridcmd, python = grid_cli(), venv_python()
    rows: list[tuple[object, ...]] = []
    profiles: list[str] = []

    def row(label: str, cmd: list[str], env: dict[str, str], target: int | None = None) -> None:
        median, fastest, cpu = _measure(cmd, env, args.repeat)
        rows.append((label, f"{median:.0f}", f"{fastest:.0f}", f"{cpu:.0f}", target))
        print(f"  {label}: {median:.0f} ms", flush=True)
        if args.importtime and cmd[: len(gridcmd)] == gridcmd:
            profiles.append(f"{label}: {_imports(cmd[len(gridcmd) :], env)}")

    try:
        src = _tree(work / "src")
        home = work / "home"
        print(f"making {args.datastores} datastores (embedded, then on a server)", flush=True)
        with grid.Client(str(home)) as client:
            for i in range(args.datastores):
                client.create(str(src), f"ds{i:03d}")
        embedded = {**base, "GRID_HOME": str(home)}
        row("python -c pass", [python, "-c", "pass"], base)
        for peer in (["git", "--version"], ["rclone", "--version"], ["restic", "version"]):
            if shutil.which(peer[0]):
                row(" ".join(peer), peer, base)
        row("grid --help", [*gridcmd, "--help"], base, TARGETS["grid --help"])
        ls = ["datastore", "ls", "ds000:1", "train"]
        row("embedded: grid datastore list", [*gridcmd, "datastore", "list"], embedded, 200)
        row(f"embedded: grid {' '.join(ls)}", [*gridcmd, *ls], embedded, 200)
        with _server(work / "team", args.datastores, src) as remote:
            env = {**base, **remote}
            row("remote: grid datastore list", [*gridcmd, "datastore", "list"], env, 200)
            row(f"remote: grid {' '.join(ls)}", [*gridcmd, *ls], env, 200)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"\nwall ms, median of {args.repeat} (load average {load:.1f} at the end)\n")
    print(table(["command", "median ms", "fastest ms", "CPU ms", "target ms"], rows))
    if profiles:
        print("\nheaviest top-level imports (ms, under -X importtime):")
        print("\n".join(profiles))


if __name__ == "__main__":
    main()
