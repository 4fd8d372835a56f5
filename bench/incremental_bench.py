#!/usr/bin/env python3
"""Benchmark "periodic uploads cost only what changed": grid against restic, dvc and rclone.

For each tool, on the same data, in one run, three timed steps on one working folder WORK:

  create     WORK holds ``small`` (50,000 files of 2-200 KiB, 2.1 GB); first upload
  unchanged  the same command again with nothing changed
  v2         WORK turned into ``incremental`` (``small`` with 1% of files modified, 1% deleted,
             1% added) by ``rsync -a --delete incremental/ WORK/``, then the same command again

``rsync`` rewrites only the changed files, so every unchanged file keeps its inode, mtime and
ctime, as in a user's tree between two uploads, and v2 sees the new tree at the SAME path as
v1 (the tools key on paths). WORK itself is a real copy of the dataset (``rsync -a``), never
hard links to it. The tools and their commands:

  grid (fsync)     ``grid datastore create WORK --name bench`` with a fresh GRID_HOME; every run
                   makes a version (like a restic snapshot); default fsync of every pack
  grid (no fsync)  the same with ``GRID_FSYNC=0``
  restic backup    ``restic backup WORK`` into a fresh local repository (``restic init`` is not
                   timed); runs 2 and 3 use the previous snapshot of WORK as parent
  dvc add+push     WORK = REPO/data in a fresh git + dvc repository with a local remote;
                   ``dvc add data`` then ``dvc push`` (two children, seconds added up)
  rclone sync      ``rclone sync WORK DEST`` into a fresh local folder (keeps no old version)

"stored" is the apparent size of every file in GRID_HOME/objects, the restic repository, the dvc
remote, the rclone destination; "v2 growth" is stored after v2 minus stored after the unchanged
re-run, and "growth/new" divides it by the bytes of the modified and added files (43.3 MB for
the full datasets). "x restic" columns are the row's seconds divided by restic's seconds for the
same step (0.50 = half of restic's time; below 1 = faster than restic). Before every timed step
the previous writes are flushed (``sync``) and WORK is read once (``tar | cat``) so it is in the
page cache. With ``--repeat N`` the tools take turns N times, each time from scratch, and the
table shows medians. Each child's wall time is from ``time.perf_counter`` and its peak RSS from
``os.wait4`` (helpers from bench/create_bench.py).

Run it from the repository root (restic, rclone: bench/setup.sh; rsync and dvc in its own venv,
default /tmp/dvc-venv or $DVC_VENV: bench/dvc_setup.sh)::

    python bench/incremental_bench.py
    python bench/incremental_bench.py --repeat 3 --json-out /tmp/incremental.json
    python bench/incremental_bench.py --quick                # first 3 folders only (~1,500 files)
    python bench/incremental_bench.py --skip-peers           # grid rows only

Missing datasets are generated with ``../shared/bench/make_datasets.py --root ROOT --only
small,incremental --jobs 2`` (and left there). Every repository, copy and GRID_HOME is made
under --base and deleted right after its measurement. Numbers on shared VMs are noisy: compare
the ratios within one run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from create_bench import (  # bench/ is not a package
    MAKE_DATASETS,
    MB,
    RESTIC_PASSWORD,
    BenchError,
    grid_command,
    indent,
    run_quiet,
    run_timed,
    scratch,
    tree_size,
    warm_cache,
)

QUICK_FOLDERS = 3
STEPS = ("create", "unchanged", "v2")
DEFAULT_DVC_VENV = "/tmp/dvc-venv"


# ---------------------------------------------------------------- datasets


def ensure_datasets(root: Path) -> tuple[Path, Path]:
    """Return (root/small, root/incremental), generating the missing ones with make_datasets.py."""
    small, inc = root / "small", root / "incremental"
    have = [
        (root / n).is_dir() and (root / f"{n}.manifest.json").exists()
        for n in ("small", "incremental")
    ]
    if not all(have):
        names = ("small", "incremental")
        missing = ",".join(n for n, ok in zip(names, have, strict=True) if not ok)
        print(f"dataset(s) {missing} missing under {root}; generating with {MAKE_DATASETS}")
        if not MAKE_DATASETS.exists():
            raise BenchError(f"{MAKE_DATASETS} does not exist")
        cmd = [sys.executable, str(MAKE_DATASETS), "--root", str(root)]
        subprocess.run([*cmd, "--only", "small,incremental", "--jobs", "2"], check=True)
    if not (small.is_dir() and inc.is_dir() and (root / "incremental.changes.json").exists()):
        raise BenchError(f"{small}, {inc} or {root / 'incremental.changes.json'} not found")
    return small, inc


def mini_datasets(small: Path, inc: Path, base: Path) -> tuple[Path, Path, Path, list[str]]:
    """--quick: hard-linked copies of the first folders of small and incremental under base.

    Returns (scratch dir to delete, mini small, mini incremental, folder names). Hard links
    are fine here: WORK is always made from these with rsync, which writes real copies.
    """
    folders = sorted(p.name for p in small.iterdir() if p.is_dir())[:QUICK_FOLDERS]
    top = scratch("mini", base)
    for name, src in (("small", small), ("incremental", inc)):
        (top / name).mkdir()
        for folder in folders:
            if (src / folder).is_dir():
                run_quiet(["cp", "-al", str(src / folder), str(top / name / folder)])
    return top, top / "small", top / "incremental", folders


def change_stats(root: Path, inc: Path, folders: list[str] | None) -> dict:
    """Counts and bytes of the modified / deleted / added files (within `folders` if given)."""
    changes = json.loads((root / "incremental.changes.json").read_text())
    small = root / "small"
    out: dict = {}
    for kind in ("modified", "deleted", "added"):
        paths = [p for p in changes[kind] if folders is None or p.split("/", 1)[0] in folders]
        tree = small if kind == "deleted" else inc
        out[kind] = len(paths)
        out[f"{kind}_bytes"] = sum(os.lstat(tree / p).st_size for p in paths)
    out["new_bytes"] = out["modified_bytes"] + out["added_bytes"]
    return out


# ---------------------------------------------------------------- tools
# A tool makes its setup (untimed) under a scratch dir and says where WORK lives; step() runs
# one timed upload of WORK and returns run_timed's dict; stored() the bytes it keeps.


class Grid:
    kind = "ours"

    def __init__(self, fsync: bool):
        self.fsync = fsync
        self.name = "grid (fsync)" if fsync else "grid (no fsync)"

    def setup(self, top: Path) -> Path:
        self.home = top / "home"
        self.env = {**os.environ, "GRID_HOME": str(self.home)}
        self.env.pop("GRID_FSYNC", None)
        if not self.fsync:
            self.env["GRID_FSYNC"] = "0"
        self.work = top / "data"
        return self.work

    def step(self) -> dict:
        argv = [*grid_command(), "datastore", "create", str(self.work), "--name", "bench"]
        return run_timed(argv, self.env)

    def stored(self) -> int:
        return tree_size(self.home / "objects")[1]

    def extra(self) -> dict:
        return {"home_bytes": tree_size(self.home)[1]}


class Restic:
    kind = "peer"
    name = "restic backup"

    def setup(self, top: Path) -> Path:
        self.repo = top / "repo"
        self.env = {
            **os.environ,
            "RESTIC_PASSWORD": RESTIC_PASSWORD,
            "RESTIC_CACHE_DIR": str(top / "cache"),
        }
        run_quiet(["restic", "init", "--repo", str(self.repo)], self.env)
        self.work = top / "data"
        return self.work

    def step(self) -> dict:
        argv = ["restic", "backup", "--quiet", "--repo", str(self.repo), str(self.work)]
        return run_timed(argv, self.env)

    def stored(self) -> int:
        return tree_size(self.repo)[1]

    def extra(self) -> dict:
        return {}


class Dvc:
    kind = "peer"
    name = "dvc add+push"

    def __init__(self, venv: Path):
        self.dvc = str(venv / "bin" / "dvc")

    def in_repo(self, *args: str) -> list[str]:
        """argv running `dvc ARGS` inside the repository (exec: wait4 sees dvc itself)."""
        return ["sh", "-c", 'cd "$0" && exec "$@"', str(self.repo), self.dvc, *args]

    def setup(self, top: Path) -> Path:
        self.repo, self.remote = top / "repo", top / "remote"
        self.repo.mkdir()
        self.env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        run_quiet(["git", "init", "-q", str(self.repo)], self.env)
        run_quiet(self.in_repo("init", "-q"), self.env)
        run_quiet(self.in_repo("config", "core.analytics", "false"), self.env)
        # dvc keeps its hash index / state under site_cache_dir (/var/tmp/dvc by default)
        run_quiet(self.in_repo("config", "core.site_cache_dir", str(top / "site-cache")), self.env)
        run_quiet(self.in_repo("remote", "add", "-d", "local", str(self.remote)), self.env)
        self.work = self.repo / "data"
        return self.work

    def step(self) -> dict:
        add = run_timed(self.in_repo("add", "-q", "data"), self.env)
        push = run_timed(self.in_repo("push", "-q"), self.env)
        return {
            "seconds": add["seconds"] + push["seconds"],
            "peak_rss_mib": max(add["peak_rss_mib"], push["peak_rss_mib"]),
            "add_seconds": add["seconds"],
            "push_seconds": push["seconds"],
        }

    def stored(self) -> int:
        return tree_size(self.remote)[1] if self.remote.exists() else 0

    def extra(self) -> dict:
        return {"cache_bytes": tree_size(self.repo / ".dvc" / "cache")[1]}


class Rclone:
    kind = "peer"
    name = "rclone sync"

    def setup(self, top: Path) -> Path:
        self.dest = top / "dest"
        self.env = {**os.environ, "RCLONE_CONFIG": str(top / "rclone.conf")}
        self.work = top / "data"
        return self.work

    def step(self) -> dict:
        return run_timed(["rclone", "sync", str(self.work), str(self.dest)], self.env)

    def stored(self) -> int:
        return tree_size(self.dest)[1] if self.dest.exists() else 0

    def extra(self) -> dict:
        return {}


# ---------------------------------------------------------------- one scenario


def flush_and_warm(work: Path) -> None:
    os.sync()
    warm_cache(work)
    os.sync()


def scenario(tool, small: Path, inc: Path, base: Path, expect: dict) -> dict:
    """create / unchanged / v2 for one tool, from scratch; returns per-step results."""
    top = scratch(tool.name.split()[0], base)
    try:
        work = tool.setup(top)
        run_quiet(["rsync", "-a", f"{small}/", f"{work}/"])
        result: dict = {"steps": {}}
        for step in STEPS:
            if step == "v2":
                os.sync()
                sync = run_timed(["rsync", "-a", "--delete", f"{inc}/", f"{work}/"])
                result["rsync_seconds"] = sync["seconds"]
                got = tree_size(work)
                if got != expect["incremental"]:
                    raise BenchError(
                        f"WORK after rsync has {got}, expected {expect['incremental']}"
                    )
            flush_and_warm(work)
            res = tool.step()
            res["stored_bytes"] = tool.stored()
            res.update(tool.extra())
            result["steps"][step] = res
        steps = result["steps"]
        result["v2_growth_bytes"] = steps["v2"]["stored_bytes"] - steps["unchanged"]["stored_bytes"]
        result["unchanged_growth_bytes"] = (
            steps["unchanged"]["stored_bytes"] - steps["create"]["stored_bytes"]
        )
        return result
    finally:
        shutil.rmtree(top, ignore_errors=True)


# ---------------------------------------------------------------- summary


def summarise(tool, runs: list[dict], error: str | None, new_bytes: int) -> dict:
    row: dict = {"name": tool.name, "kind": tool.kind, "runs": runs, "error": error}
    if not runs:
        return row
    for step in STEPS:
        row[f"{step}_s"] = statistics.median(r["steps"][step]["seconds"] for r in runs)
    row["peak_rss_mib"] = statistics.median(
        max(r["steps"][s]["peak_rss_mib"] for s in STEPS) for r in runs
    )
    row["v1_stored_bytes"] = int(
        statistics.median(r["steps"]["create"]["stored_bytes"] for r in runs)
    )
    row["unchanged_growth_bytes"] = int(
        statistics.median(r["unchanged_growth_bytes"] for r in runs)
    )
    row["v2_growth_bytes"] = int(statistics.median(r["v2_growth_bytes"] for r in runs))
    row["growth_per_new"] = row["v2_growth_bytes"] / new_bytes if new_bytes else None
    if isinstance(tool, Dvc):
        for step in STEPS:
            for part in ("add", "push"):
                row[f"{step}_{part}_s"] = statistics.median(
                    r["steps"][step][f"{part}_seconds"] for r in runs
                )
            row[f"{step}_cache_bytes"] = int(
                statistics.median(r["steps"][step]["cache_bytes"] for r in runs)
            )
    return row


def add_ratios(rows: list[dict]) -> None:
    """<step>_x_restic = row seconds / restic seconds for that step (0.5 = half restic's time)."""
    restic = next((r for r in rows if r["name"] == Restic.name and r.get("create_s")), None)
    for row in rows:
        for step in STEPS:
            ok = restic and row.get(f"{step}_s") is not None and restic[f"{step}_s"] > 0
            row[f"{step}_x_restic"] = row[f"{step}_s"] / restic[f"{step}_s"] if ok else None


COLUMNS = [  # header, width, row key, format
    ("tool", 16, "name", "{}"),
    ("create s", 9, "create_s", "{:.2f}"),
    ("unchanged s", 11, "unchanged_s", "{:.2f}"),
    ("v2 s", 7, "v2_s", "{:.2f}"),
    ("v1 stored MB", 12, "v1_stored_bytes", "{:,.1f}"),
    ("v2 growth MB", 12, "v2_growth_bytes", "{:,.2f}"),
    ("growth/new", 10, "growth_per_new", "{:.3f}"),
    ("create x restic", 15, "create_x_restic", "{:.2f}"),
    ("unch x restic", 13, "unchanged_x_restic", "{:.2f}"),
    ("v2 x restic", 11, "v2_x_restic", "{:.2f}"),
    ("RSS MiB", 7, "peak_rss_mib", "{:,.0f}"),
]


def format_table(report: dict) -> str:
    d = report["data"]
    ch = d["changes"]
    lines = [
        f"{d['label']}: v1 {d['small'][0]:,} files, {d['small'][1] / MB:,.1f} MB -> v2 "
        f"{d['incremental'][0]:,} files ({ch['modified']} modified, {ch['deleted']} deleted, "
        f"{ch['added']} added; new bytes {ch['new_bytes'] / MB:,.2f} MB); warm cache, "
        f"median of {report['repeat']}",
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w, _, _) in enumerate(COLUMNS)),
    ]
    for row in report["rows"]:
        if not row.get("runs"):
            lines.append(f"{row['name'].ljust(COLUMNS[0][1])}  FAILED (see the log above)")
            continue
        cells = [row["name"].ljust(COLUMNS[0][1])]
        for _, width, key, fmt in COLUMNS[1:]:
            value = row.get(key)
            if value is not None and key.endswith("_bytes"):
                value = value / MB
            cells.append((fmt.format(value) if value is not None else "-").rjust(width))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def format_notes(report: dict) -> str:
    lines = []
    by_name = {r["name"]: r for r in report["rows"] if r.get("runs")}
    dvc = by_name.get(Dvc.name)
    if dvc:
        split = ", ".join(
            f"{s} {dvc[f'{s}_add_s']:.2f} + {dvc[f'{s}_push_s']:.2f} s" for s in STEPS
        )
        lines.append(f"dvc add + push: {split}")
        lines.append(
            f"dvc also keeps a full copy in .dvc/cache: {dvc['create_cache_bytes'] / MB:,.1f} MB "
            f"after v1, +{(dvc['v2_cache_bytes'] - dvc['unchanged_cache_bytes']) / MB:,.1f} MB "
            "after v2 (not counted in 'stored')"
        )
    if Rclone.name in by_name:
        lines.append(
            "rclone sync keeps no old version: its growth is added - deleted + modified size "
            "change, so growth/new means nothing for it"
        )
    for row in by_name.values():
        if row["kind"] == "ours" and row["runs"]:
            home = statistics.median(r["steps"]["v2"]["home_bytes"] for r in row["runs"])
            lines.append(
                f"{row['name']}: GRID_HOME after v2 {home / MB:,.1f} MB in all (objects + "
                f"catalog); unchanged re-run grew objects by "
                f"{row['unchanged_growth_bytes'] / MB:,.3f} MB"
            )
    rsync = [r["rsync_seconds"] for row in report["rows"] for r in row["runs"]]
    if rsync:
        lines.append(
            f"reference: rsync -a --delete incremental/ WORK/ (untimed setup of v2) "
            f"median {statistics.median(rsync):.2f} s"
        )
    return "\n".join(lines)


def format_targets(report: dict) -> str:
    """The issue's targets, checked for each grid row."""
    by_name = {r["name"]: r for r in report["rows"] if r.get("runs")}
    restic, dvc, rclone = (by_name.get(n) for n in (Restic.name, Dvc.name, Rclone.name))
    lines = ["targets (from the issue):"]
    for row in (r for r in by_name.values() if r["kind"] == "ours"):
        checks = []
        if restic:
            for step, label in (("unchanged", "unchanged re-run"), ("v2", "v2 time")):
                x = row[f"{step}_x_restic"]
                checks.append((f"{label} <= 0.5 x restic's", f"{x:.2f} x", x <= 0.5))
        g = row["growth_per_new"]
        if g is not None:
            checks.append(("v2 growth <= 1.05 x new bytes", f"{g:.3f} x", g <= 1.05))
        for peer in (dvc, rclone):
            if peer:
                for step in ("unchanged", "v2"):
                    a, b = row[f"{step}_s"], peer[f"{step}_s"]
                    checks.append(
                        (f"{step} faster than {peer['name']}", f"{a:.2f} vs {b:.2f} s", a < b)
                    )
        for text, value, ok in checks:
            lines.append(f"  {row['name']:<16} {text:<40} {value:>18}  {'ok' if ok else 'MISSED'}")
    return "\n".join(lines)


# ---------------------------------------------------------------- orchestration


def check_tools(tools: list, dvc_venv: Path) -> None:
    missing = [t for t in ("rsync", "tar", "git") if shutil.which(t) is None]
    names = {t.name for t in tools}
    if Restic.name in names and shutil.which("restic") is None:
        missing.append("restic")
    if Rclone.name in names and shutil.which("rclone") is None:
        missing.append("rclone")
    problems = []
    if missing:
        problems.append(f"missing tool(s): {', '.join(missing)} (apt-get install -y ...)")
    if Dvc.name in names and not (dvc_venv / "bin" / "dvc").exists():
        problems.append(f"no dvc in {dvc_venv}: run bench/dvc_setup.sh (DVC_VENV={dvc_venv})")
    if problems:
        raise BenchError("; ".join(problems))


def tool_versions(dvc_venv: Path) -> dict[str, str]:
    versions = {}
    for argv in (
        ["restic", "version"],
        ["rclone", "version"],
        ["rsync", "--version"],
        [str(dvc_venv / "bin" / "dvc"), "--version"],
    ):
        try:
            res = subprocess.run(argv, capture_output=True, text=True, check=False)
            out = (res.stdout or res.stderr).strip()
            versions[Path(argv[0]).name] = out.splitlines()[0] if out else "?"
        except OSError:
            versions[Path(argv[0]).name] = "missing"
    try:
        grid_version = importlib.metadata.version("grid-datastores")
    except importlib.metadata.PackageNotFoundError:  # run by a python without grid installed
        grid_version = "?"
    versions["grid"] = f"grid-datastores {grid_version} (git {git_head()})"
    return versions


def git_head() -> str:
    res = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parent), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return res.stdout.strip() or "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--datasets",
        type=Path,
        default=Path("/tmp/bench-data"),
        help="root holding small/ and incremental/ (default /tmp/bench-data)",
    )
    ap.add_argument(
        "--base",
        type=Path,
        default=Path("/tmp"),
        help="where WORK copies, repositories and GRID_HOMEs are made (default /tmp)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; prints medians")
    ap.add_argument("--json-out", type=Path, help="also write all runs and medians as JSON")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"only the first {QUICK_FOLDERS} folders of small and incremental",
    )
    ap.add_argument("--skip-peers", action="store_true", help="grid rows only")
    ap.add_argument(
        "--dvc-venv",
        type=Path,
        default=Path(os.environ.get("DVC_VENV", DEFAULT_DVC_VENV)),
        help="virtual environment holding dvc (default $DVC_VENV or /tmp/dvc-venv)",
    )
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools: list = [Grid(fsync=True), Grid(fsync=False)]
    if not args.skip_peers:
        tools += [Restic(), Dvc(args.dvc_venv), Rclone()]
    try:
        check_tools(tools, args.dvc_venv)
        small, inc = ensure_datasets(args.datasets)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.base.mkdir(parents=True, exist_ok=True)
    mini_top = None
    try:
        folders = None
        if args.quick:
            mini_top, small, inc, folders = mini_datasets(small, inc, args.base)
        data = {
            "label": f"quick ({', '.join(folders)})" if folders else "small -> incremental",
            "small": tree_size(small),
            "incremental": tree_size(inc),
            "changes": change_stats(args.datasets, inc, folders),
        }
        report = {
            "machine": {
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "tools": tool_versions(args.dvc_venv),
                "grid": " ".join(grid_command()),
            },
            "repeat": args.repeat,
            "quick": args.quick,
            "data": data,
        }
        print(
            f"== {data['label']}: {data['small'][0]:,} -> {data['incremental'][0]:,} files, "
            f"new bytes {data['changes']['new_bytes']:,}",
            flush=True,
        )
        runs: dict[str, list[dict]] = {t.name: [] for t in tools}
        errors: dict[str, str] = {}
        for rep in range(1, args.repeat + 1):
            for tool in tools:
                if tool.name in errors:
                    continue
                start = time.perf_counter()
                try:
                    result = scenario(tool, small, inc, args.base, data)
                except BenchError as exc:
                    errors[tool.name] = str(exc)
                    print(f"  [{rep}/{args.repeat}] {tool.name}: FAILED\n{indent(str(exc))}")
                    continue
                runs[tool.name].append(result)
                s = result["steps"]
                print(
                    f"  [{rep}/{args.repeat}] {tool.name}: create {s['create']['seconds']:.2f} s, "
                    f"unchanged {s['unchanged']['seconds']:.2f} s, v2 {s['v2']['seconds']:.2f} s, "
                    f"v2 growth {result['v2_growth_bytes'] / MB:,.2f} MB "
                    f"({time.perf_counter() - start:.0f} s with setup)",
                    flush=True,
                )
        new_bytes = data["changes"]["new_bytes"]
        report["rows"] = [summarise(t, runs[t.name], errors.get(t.name), new_bytes) for t in tools]
        add_ratios(report["rows"])
    finally:
        if mini_top is not None:
            shutil.rmtree(mini_top, ignore_errors=True)
    print()
    print(format_table(report))
    print("x restic = row seconds / restic seconds for the same step (below 1 = faster)")
    notes = format_notes(report)
    if notes:
        print(notes)
    print()
    print(format_targets(report))
    print("\nversions: " + "; ".join(f"{k}: {v}" for k, v in report["machine"]["tools"].items()))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
