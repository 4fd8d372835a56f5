#!/usr/bin/env python3
"""Benchmark `grid datastore create` against physical limits and peers (restic, rclone).

What it measures, for each dataset (default: ``small`` = 50,000 files of 2-200 KiB, 2.1 GB in
100 folders; ``large`` = 8 x 256 MiB), always with the dataset already in the page cache:

  limits   ``tar cf - DIR | cat >/dev/null``   how fast the tree can be read at all
           ``find DIR -type f -print0 | xargs -0 b3sum``   read + BLAKE3 every file
           ``dd if=/dev/zero bs=1M count=2048 conv=fsync``   durable writes through the page cache
           ``dd ... bs=4M oflag=direct conv=fsync``   durable writes that skip it (as grid's packs)
  peers    ``restic backup DIR`` into a fresh local repository (``restic init`` is not timed)
           ``rclone copy DIR DEST`` into a fresh local folder
  ours     ``grid datastore create DIR --name bench-<dataset>`` with a fresh ``GRID_HOME``,
           once with the default (fsync each pack, like restic) as "grid (fsync)" and once
           with ``GRID_FSYNC=0`` (no fsync, like rclone / cp) as "grid (no fsync)"

Every command runs as a child process; wall time comes from ``time.perf_counter`` and the peak
RSS from ``os.wait4`` (the largest resident set of the child and of the children it waited for).
"stored" is the apparent size of every file in the repository / destination / GRID_HOME after
the run. "vs restic" and "vs rclone" are speed-ups: the peer's median seconds divided by the
row's median seconds (2.00x = twice as fast as the peer; below 1 = slower).

Before every timed run the dataset is read once (``tar | cat``) to warm the page cache, and
``sync`` flushes the previous run's writes so they do not bleed into the next timing. With
``--repeat N`` the tools take turns (round-robin) N times and the table shows medians. Every
temporary directory, repository and file is deleted right after its measurement.

Run it from the repository root (needs restic, rclone and b3sum: ``apt-get install -y restic
rclone b3sum``; the grid CLI is ``.venv/bin/grid`` if present, else ``python -m grid``)::

    python bench/create_bench.py --datasets small,large
    python bench/create_bench.py --datasets small --repeat 3 --json-out /tmp/create.json
    python bench/create_bench.py --skip-ours        # only the limits and the peers

Missing datasets are generated with ``../shared/bench/make_datasets.py --root ROOT --only
small,large``. Numbers on shared VMs are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MAKE_DATASETS = REPO_ROOT.parent / "shared" / "bench" / "make_datasets.py"
REQUIRED_TOOLS = {"restic": "restic", "rclone": "rclone", "b3sum": "b3sum"}  # binary -> apt pkg
DD_MIB = 2048
RESTIC_PASSWORD = "grid-bench"
MB = 1_000_000
MIB = 1024 * 1024


class BenchError(RuntimeError):
    """A command failed or a prerequisite is missing; the message says which."""


# ---------------------------------------------------------------- running and timing children


def run_timed(argv: list[str], env: dict[str, str] | None = None, shell: bool = False) -> dict:
    """Run one child to completion; return wall seconds and its peak RSS (MiB) from wait4."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            env=env,
            shell=shell,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-2000:]
            shown = argv if shell else " ".join(argv)
            raise BenchError(f"command failed (exit {proc.returncode}): {shown}\n{tail}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}  # ru_maxrss is KiB


def run_quiet(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run an untimed setup step; raise BenchError with its output if it fails."""
    res = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BenchError(f"command failed: {' '.join(argv)}\n{(res.stderr or res.stdout)[-2000:]}")


def warm_cache(directory: Path) -> None:
    """Read every file once so the timed run finds the dataset in the page cache."""
    subprocess.run(f"tar cf - -C {q(directory)} . | cat >/dev/null", shell=True, check=True)


def q(path: Path | str) -> str:
    """Quote a path for the shell pipelines."""
    return "'" + str(path).replace("'", "'\\''") + "'"


def tree_size(path: Path) -> tuple[int, int]:
    """Return (files, apparent bytes) of every regular file under path."""
    files = total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            total += st.st_size
    return files, total


def scratch(tag: str, base: Path) -> Path:
    """A fresh, empty temporary directory for one measurement."""
    return Path(tempfile.mkdtemp(prefix=f"grid-bench-{tag}-", dir=base))


# ---------------------------------------------------------------- the measured jobs
# Each job takes (dataset dir, scratch base, dataset name) and returns run_timed's dict, plus
# "stored_bytes" where the job stores something. Each cleans up after itself.


def job_tar(src: Path, base: Path, name: str) -> dict:
    return run_timed(f"tar cf - -C {q(src)} . | cat >/dev/null", shell=True)


def job_b3sum(src: Path, base: Path, name: str) -> dict:
    return run_timed(f"find {q(src)} -type f -print0 | xargs -0 b3sum >/dev/null", shell=True)


def job_dd(src: Path, base: Path, name: str, direct: bool = False) -> dict:
    target = base / f"grid-bench-dd-{os.getpid()}"
    try:
        cmd = ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={DD_MIB}", "conv=fsync"]
        if direct:
            cmd = [*cmd[:3], "bs=4M", f"count={DD_MIB // 4}", "oflag=direct", "conv=fsync"]
        return run_timed(cmd)
    finally:
        target.unlink(missing_ok=True)


def job_dd_direct(src: Path, base: Path, name: str) -> dict:
    return job_dd(src, base, name, direct=True)


def job_restic(src: Path, base: Path, name: str) -> dict:
    work = scratch("restic", base)
    try:
        repo = work / "repo"
        env = {
            **os.environ,
            "RESTIC_PASSWORD": RESTIC_PASSWORD,
            "RESTIC_CACHE_DIR": str(work / "cache"),
        }
        run_quiet(["restic", "init", "--repo", str(repo)], env)
        os.sync()
        result = run_timed(["restic", "backup", "--quiet", "--repo", str(repo), str(src)], env)
        result["stored_bytes"] = tree_size(repo)[1]
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def job_rclone(src: Path, base: Path, name: str) -> dict:
    work = scratch("rclone", base)
    try:
        dest = work / "dest"
        env = {**os.environ, "RCLONE_CONFIG": str(work / "rclone.conf")}
        result = run_timed(["rclone", "copy", str(src), str(dest)], env)
        result["stored_bytes"] = tree_size(dest)[1]
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def grid_command() -> list[str]:
    """The project's CLI: .venv/bin/grid if present, else `python -m grid`."""
    venv_grid = REPO_ROOT / ".venv" / "bin" / "grid"
    if venv_grid.exists():
        return [str(venv_grid)]
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    return [str(venv_python if venv_python.exists() else sys.executable), "-m", "grid"]


def make_job_grid(fsync: bool):
    def job_grid(src: Path, base: Path, name: str) -> dict:
        home = scratch("grid-home", base)
        try:
            env = {**os.environ, "GRID_HOME": str(home)}
            env.pop("GRID_FSYNC", None)
            if not fsync:
                env["GRID_FSYNC"] = "0"
            argv = [*grid_command(), "datastore", "create", str(src), "--name", f"bench-{name}"]
            result = run_timed(argv, env)
            result["stored_bytes"] = tree_size(home)[1]
            return result
        finally:
            shutil.rmtree(home, ignore_errors=True)

    return job_grid


# (row label, kind, job, counts files?) in the order they run and print
LIMIT_JOBS = [
    ("tar | cat", "limit", job_tar, True),
    ("b3sum (every file)", "limit", job_b3sum, True),
    (f"dd {DD_MIB} MiB conv=fsync", "limit", job_dd, False),
    (f"dd {DD_MIB} MiB oflag=direct", "limit", job_dd_direct, False),
]
PEER_JOBS = [
    ("restic backup", "peer", job_restic, True),
    ("rclone copy", "peer", job_rclone, True),
]
OUR_JOBS = [
    ("grid (fsync)", "ours", make_job_grid(fsync=True), True),
    ("grid (no fsync)", "ours", make_job_grid(fsync=False), True),
]


# ---------------------------------------------------------------- orchestration


def check_tools(need_peers: bool) -> None:
    """Fail early, naming the Debian package, if a required binary is missing."""
    wanted = ["b3sum"] + (["restic", "rclone"] if need_peers else [])
    missing = [REQUIRED_TOOLS[t] for t in wanted if shutil.which(t) is None]
    if missing:
        raise BenchError(
            f"missing tool(s): {', '.join(missing)}; install the Debian package(s) with "
            f"`apt-get install -y {' '.join(missing)}`"
        )


def ensure_dataset(root: Path, name: str) -> Path:
    """Return root/name, generating small and large with make_datasets.py if it is missing."""
    path = root / name
    if not (path.is_dir() and (root / f"{name}.manifest.json").exists()):
        print(f"dataset {path} missing; generating it with {MAKE_DATASETS}", flush=True)
        if not MAKE_DATASETS.exists():
            raise BenchError(f"{path} is missing and {MAKE_DATASETS} does not exist")
        cmd = [sys.executable, str(MAKE_DATASETS), "--root", str(root), "--only", "small,large"]
        subprocess.run(cmd, check=True)
    if not path.is_dir():
        raise BenchError(f"dataset {path} not found (known: small, large)")
    return path


def tool_versions() -> dict[str, str]:
    versions = {}
    for argv in (["restic", "version"], ["rclone", "version"], ["b3sum", "--version"]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            versions[argv[0]] = out.splitlines()[0] if out else "?"
        except OSError:
            versions[argv[0]] = "missing"
    return versions


def measure_dataset(name: str, src: Path, jobs: list, repeat: int, base: Path) -> dict:
    """Run every job `repeat` times, round-robin, and summarise each row with medians."""
    files, size = tree_size(src)
    print(f"\n== {name}: {files:,} files, {size / MB:,.1f} MB ({src})", flush=True)
    runs: dict[str, list[dict]] = {label: [] for label, *_ in jobs}
    errors: dict[str, str] = {}
    for rep in range(1, repeat + 1):
        for label, _, job, _ in jobs:
            if label in errors:
                continue
            os.sync()
            warm_cache(src)
            try:
                result = job(src, base, name)
            except BenchError as exc:
                errors[label] = str(exc)
                print(f"  [{rep}/{repeat}] {label}: FAILED\n{indent(str(exc))}", flush=True)
                continue
            runs[label].append(result)
            print(f"  [{rep}/{repeat}] {label}: {result['seconds']:.2f} s", flush=True)
    rows = [
        summarise(label, kind, counts, runs[label], errors.get(label), files, size)
        for label, kind, _, counts in jobs
    ]
    add_ratios(rows)
    return {"files": files, "bytes": size, "path": str(src), "rows": rows}


def summarise(label, kind, counts_files, results, error, files, size) -> dict:
    row: dict = {"name": label, "kind": kind, "runs": results, "error": error}
    if not results:
        return row
    seconds = statistics.median(r["seconds"] for r in results)
    work_bytes = DD_MIB * MIB if label.startswith("dd ") else size
    row.update(
        seconds=seconds,
        files_per_s=files / seconds if counts_files else None,
        mb_per_s=work_bytes / MB / seconds,
        peak_rss_mib=statistics.median(r["peak_rss_mib"] for r in results),
    )
    stored = [r["stored_bytes"] for r in results if "stored_bytes" in r]
    row["stored_bytes"] = int(statistics.median(stored)) if stored else None
    return row


def add_ratios(rows: list[dict]) -> None:
    """vs_<peer> = peer seconds / row seconds (a speed-up; >1 means faster than the peer)."""
    peers = {"restic": "restic backup", "rclone": "rclone copy"}
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        for key, peer_name in peers.items():
            peer = by_name.get(peer_name)
            ok = row.get("seconds") and peer and peer.get("seconds") and row["kind"] != "limit"
            row[f"vs_{key}"] = peer["seconds"] / row["seconds"] if ok else None


def indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


# ---------------------------------------------------------------- output

COLUMNS = [  # header, width, row key, format
    ("tool", 30, "name", "{}"),
    ("seconds", 8, "seconds", "{:.2f}"),
    ("files/s", 9, "files_per_s", "{:,.0f}"),
    ("MB/s", 7, "mb_per_s", "{:,.0f}"),
    ("RSS MiB", 8, "peak_rss_mib", "{:,.0f}"),
    ("stored bytes", 15, "stored_bytes", "{:,}"),
    ("vs restic", 9, "vs_restic", "{:.2f}x"),
    ("vs rclone", 9, "vs_rclone", "{:.2f}x"),
]


def format_table(name: str, data: dict, repeat: int) -> str:
    lines = [
        f"{name}: {data['files']:,} files, {data['bytes'] / MB:,.1f} MB, "
        f"warm cache, median of {repeat}"
    ]
    lines.append(
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w, _, _) in enumerate(COLUMNS))
    )
    for row in data["rows"]:
        label = f"{row['kind']}: {row['name']}" if row["kind"] == "limit" else row["name"]
        cells = [label.ljust(COLUMNS[0][1])]
        for _, width, key, fmt in COLUMNS[1:]:
            value = row.get(key)
            cells.append((fmt.format(value) if value is not None else "-").rjust(width))
        if row.get("error") and not row.get("runs"):
            cells = [label.ljust(COLUMNS[0][1]), "FAILED (see the log above)"]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--root",
        type=Path,
        default=Path("/tmp/bench-data"),
        help="where the datasets live (default /tmp/bench-data)",
    )
    ap.add_argument("--datasets", default="small,large", help="comma-separated (small,large)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; prints medians")
    ap.add_argument("--json-out", type=Path, help="also write all runs and medians as JSON")
    ap.add_argument("--skip-limits", action="store_true", help="skip tar, b3sum and dd")
    ap.add_argument("--skip-peers", action="store_true", help="skip restic and rclone")
    ap.add_argument("--skip-ours", action="store_true", help="skip grid (limits and peers only)")
    ap.add_argument(
        "--tmp",
        type=Path,
        default=Path("/tmp"),
        help="where repositories, copies and GRID_HOMEs are made (default /tmp)",
    )
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = (
        (LIMIT_JOBS if not args.skip_limits else [])
        + (PEER_JOBS if not args.skip_peers else [])
        + (OUR_JOBS if not args.skip_ours else [])
    )
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    try:
        check_tools(need_peers=not args.skip_peers)
        sources = {name: ensure_dataset(args.root, name) for name in names}
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.tmp.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tools": tool_versions(),
            "grid": " ".join(grid_command()),
        },
        "repeat": args.repeat,
        "datasets": {},
    }
    for name, src in sources.items():
        report["datasets"][name] = measure_dataset(name, src, jobs, args.repeat, args.tmp)
    print()
    for name, data in report["datasets"].items():
        print(format_table(name, data, args.repeat) + "\n")
    print("vs restic / vs rclone = peer seconds / row seconds (above 1.00x = faster than peer)")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    failed = any(r.get("error") for d in report["datasets"].values() for r in d["rows"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
