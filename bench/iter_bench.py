#!/usr/bin/env python3
"""Benchmark grid's whole-dataset streaming (``Client.iter_files``) against litdata.

Both tools turn a folder of many small files into a few large ones ("prepare") and then stream
every sample back in order. On one dataset (default ``small`` = 50,000 files of 2-200 KiB,
2.1 GB in 100 folders), each repetition measures, in this order:

  grid     prepare  ``grid datastore create SRC --name bench-iter`` into a fresh ``GRID_HOME``
                    (with ``GRID_FSYNC=0`` unless ``--grid-fsync``: litdata does not fsync)
           iterate  a fresh process runs ``Client(home).iter_files("bench-iter")`` over the
                    whole version, counting items and ``len(bytes)`` (grid reads each sample
                    into a ``bytes`` and checks it against its hash)
  litdata  prepare  ``litdata.optimize(fn, inputs=<every file path>, output_dir=OUT,
                    chunk_bytes="64MB", num_workers=2)`` in a fresh process; ``fn`` returns
                    ``{"path": relative path, "data": file bytes}``
           iterate  a fresh process runs ``for item in litdata.StreamingDataset(OUT)`` (no
                    DataLoader, one process, like grid), counting items and
                    ``len(item["data"])`` (litdata hands the bytes back as a memoryview into
                    a memory-mapped chunk, unverified)

Both loops also read one byte of every 4 KiB page of each sample: without it litdata's
``len(memoryview)`` would never fault its mmap in, and a cold pass would read nothing.

Each tool's output is iterated three times, each in a fresh process:

  first    right after prepare: what was just written is most likely still in the page cache
  warm     a second pass, everything in the page cache
  cold     after ``sync; echo 3 > /proc/sys/vm/drop_caches`` (needs root): read from disk, and
           the interpreter, grid / torch + litdata are loaded from disk too

The source folder is read once (``tar | cat``) before each prepare so both read it from the page
cache. Times are wall seconds of the child process from ``time.perf_counter`` (so items/s
*include* the interpreter start and imports: torch makes litdata's start slower); each worker
also reports its seconds inside the loop (``loop_seconds`` in the JSON) and the process's peak RSS
comes from ``os.wait4``. "vs litdata" is litdata's median seconds divided by grid's (a
speed-up: 2.00x = grid twice as fast). "bytes" totals prove that both read every byte.

litdata lives in its own virtual environment (never in the project's .venv): create it with
``bash bench/litdata_setup.sh`` (default ``/tmp/litdata-venv``, or ``$LITDATA_VENV``). This
script runs under the project's python and starts itself under the litdata venv's python for
the litdata steps (``--worker litdata-optimize`` / ``--worker litdata-iter``).

Run it from the repository root::

    bash bench/litdata_setup.sh
    .venv/bin/python bench/iter_bench.py --quick                   # 2 folders, a sanity check
    .venv/bin/python bench/iter_bench.py                           # the whole small dataset
    .venv/bin/python bench/iter_bench.py --repeat 3 --json-out /tmp/iter.json

A missing ``ROOT/small`` is generated with ``../shared/bench/make_datasets.py --only small`` and
deleted again at the end. Every GRID_HOME, litdata output and cache lives in a scratch folder
under ``--tmp`` (default /tmp), deleted right after its measurement. Numbers on shared 2-core
VMs are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from create_bench import (  # stdlib-only helpers, usable in either venv
    MAKE_DATASETS,
    MB,
    REPO_ROOT,
    BenchError,
    grid_command,
    run_timed,
    tree_size,
    warm_cache,
)

DATASET = "small"
GRID_NAME = "bench-iter"
CHUNK_BYTES = "64MB"
OPTIMIZE_WORKERS = 2
QUICK_FOLDERS = 2
PASSES = ("first", "warm", "cold")
DEFAULT_LITDATA_VENV = "/tmp/litdata-venv"
DROP_CACHES = "/proc/sys/vm/drop_caches"
PAGE = 4096


# ---------------------------------------------------------------- workers (child processes)
# Each worker prints one JSON line on stdout: {"items", "bytes", "loop_seconds"}.


def touch(data: bytes | memoryview) -> int:
    """Read one byte of every 4 KiB page, so a memory-mapped sample is really read."""
    return sum(memoryview(data)[::PAGE])


def worker_grid_iter(home: str, name: str) -> dict:
    from grid import Client

    start = time.perf_counter()
    items = total = 0
    with Client(home) as client:
        for _path, data in client.iter_files(name):
            items += 1
            total += len(data)
            touch(data)
    return {"items": items, "bytes": total, "loop_seconds": time.perf_counter() - start}


def litdata_sample(root: str, path: str) -> dict:
    """optimize's fn: one file -> {"path": its path relative to root, "data": its bytes}."""
    with open(path, "rb") as f:
        data = f.read()
    return {"path": os.path.relpath(path, root), "data": data}


def worker_litdata_optimize(src: str, out: str) -> dict:
    import litdata

    start = time.perf_counter()
    inputs = sorted(
        os.path.join(dirpath, name) for dirpath, _, names in os.walk(src) for name in names
    )
    litdata.optimize(
        fn=functools.partial(litdata_sample, src),
        inputs=inputs,
        output_dir=out,
        chunk_bytes=CHUNK_BYTES,
        num_workers=OPTIMIZE_WORKERS,
        verbose=False,
    )
    return {"items": len(inputs), "bytes": None, "loop_seconds": time.perf_counter() - start}


def worker_litdata_iter(out: str) -> dict:
    import litdata

    start = time.perf_counter()
    items = total = 0
    for item in litdata.StreamingDataset(out):
        items += 1
        total += len(item["data"])
        touch(item["data"])
    return {"items": items, "bytes": total, "loop_seconds": time.perf_counter() - start}


def run_worker(args: argparse.Namespace) -> int:
    kind, *params = args.worker
    if kind == "grid-iter":
        result = worker_grid_iter(*params)
    elif kind == "litdata-optimize":
        result = worker_litdata_optimize(*params)
    elif kind == "litdata-iter":
        result = worker_litdata_iter(*params)
    else:
        raise SystemExit(f"unknown worker {kind}")
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------- running children


def run_child(argv: list[str], env: dict[str, str]) -> dict:
    """Run a worker; return run_timed's wall seconds and peak RSS plus the worker's JSON line."""
    with tempfile.NamedTemporaryFile(mode="w+", suffix=".json") as out:
        result = run_timed(["sh", "-c", 'exec "$@" >"$0"', out.name, *argv], env)
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"worker printed no result: {' '.join(argv)}")
    return {**result, **json.loads(lines[-1])}


def drop_caches() -> bool:
    """sync, then drop the page cache, dentries and inodes; False when not allowed."""
    os.sync()
    try:
        with open(DROP_CACHES, "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def self_argv(python: str, *worker: str) -> list[str]:
    return [python, str(Path(__file__).resolve()), "--worker", *worker]


class Grid:
    label = "grid iter_files"

    def __init__(self, fsync: bool) -> None:
        self.fsync = fsync
        self.python = str(REPO_ROOT / ".venv" / "bin" / "python")
        if not os.path.exists(self.python):
            self.python = sys.executable

    def env(self, work: Path) -> dict[str, str]:
        env = {**os.environ, "GRID_HOME": str(work / "home")}
        env["GRID_FSYNC"] = "1" if self.fsync else "0"
        return env

    def prepare(self, src: Path, work: Path) -> dict:
        argv = [*grid_command(), "datastore", "create", str(src), "--name", GRID_NAME]
        result = run_timed(argv, self.env(work))
        result["stored_bytes"] = tree_size(work / "home")[1]
        return result

    def iterate(self, work: Path) -> dict:
        argv = self_argv(self.python, "grid-iter", str(work / "home"), GRID_NAME)
        return run_child(argv, self.env(work))


class Litdata:
    label = "litdata StreamingDataset"

    def __init__(self, venv: Path) -> None:
        self.python = str(venv / "bin" / "python")

    def env(self, work: Path) -> dict[str, str]:
        return {
            **os.environ,
            "LITDATA_DISABLE_VERSION_CHECK": "1",  # no PyPI request inside the timing
            "DATA_OPTIMIZER_CACHE_FOLDER": str(work / "cache" / "chunks"),
            "DATA_OPTIMIZER_DATA_CACHE_FOLDER": str(work / "cache" / "data"),
            "TMPDIR": str(work / "tmp"),  # litdata's default caches live under tempfile's dir
        }

    def prepare(self, src: Path, work: Path) -> dict:
        (work / "tmp").mkdir(exist_ok=True)
        argv = self_argv(self.python, "litdata-optimize", str(src), str(work / "out"))
        result = run_child(argv, self.env(work))
        result["stored_bytes"] = tree_size(work / "out")[1]
        return result

    def iterate(self, work: Path) -> dict:
        return run_child(self_argv(self.python, "litdata-iter", str(work / "out")), self.env(work))


# ---------------------------------------------------------------- orchestration


def ensure_small(root: Path) -> tuple[Path, bool]:
    """Return (root/small, whether this run generated it and so must delete it)."""
    path = root / DATASET
    if path.is_dir() and (root / f"{DATASET}.manifest.json").exists():
        return path, False
    if not MAKE_DATASETS.exists():
        raise BenchError(f"{path} is missing and {MAKE_DATASETS} does not exist")
    print(f"dataset {path} missing; generating it with {MAKE_DATASETS}", flush=True)
    cmd = [sys.executable, str(MAKE_DATASETS), "--root", str(root), "--only", DATASET]
    subprocess.run([*cmd, "--jobs", "2"], check=True)
    return path, True


def quick_copy(src: Path, base: Path) -> Path:
    """The first QUICK_FOLDERS folders of src, hard-linked (copied across file systems)."""
    dest = Path(tempfile.mkdtemp(prefix="iter-bench-quick-", dir=base))
    for folder in sorted(p for p in src.iterdir() if p.is_dir())[:QUICK_FOLDERS]:
        shutil.copytree(folder, dest / folder.name, copy_function=link_or_copy)
    return dest


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def measure(tool, src: Path, base: Path, files: int, size: int, log) -> dict:
    """One repetition for one tool: prepare, then the first, warm and cold passes."""
    work = Path(tempfile.mkdtemp(prefix=f"iter-bench-{tool.label.split()[0]}-", dir=base))
    try:
        os.sync()
        warm_cache(src)
        run = {"prepare": tool.prepare(src, work)}
        log(f"{tool.label}: prepare {run['prepare']['seconds']:.2f} s")
        for name in PASSES:
            if name == "cold" and not drop_caches():
                run[name] = None
                log(f"{tool.label}: cold pass skipped (cannot write {DROP_CACHES})")
                continue
            res = tool.iterate(work)
            run[name] = res
            ok = res["items"] == files and res["bytes"] == size
            log(
                f"{tool.label}: {name} {res['seconds']:.2f} s ({res['loop_seconds']:.2f} s in "
                f"the loop), {res['items']:,} items, {res['bytes']:,} bytes"
                + ("" if ok else f"  MISMATCH: expected {files:,} items, {size:,} bytes")
            )
            if not ok:
                raise BenchError(f"{tool.label} {name} pass read {res['items']} items")
        return run
    finally:
        shutil.rmtree(work, ignore_errors=True)


def median_of(runs: list[dict], step: str, key: str = "seconds") -> float | None:
    values = [r[step][key] for r in runs if r.get(step)]
    return statistics.median(values) if values else None


def summarise(label: str, runs: list[dict], files: int) -> dict:
    row: dict = {"name": label, "runs": runs}
    row["prepare_seconds"] = median_of(runs, "prepare")
    row["stored_bytes"] = median_of(runs, "prepare", "stored_bytes")
    for name in PASSES:
        seconds = median_of(runs, name)
        row[f"{name}_seconds"] = seconds
        row[f"{name}_loop_seconds"] = median_of(runs, name, "loop_seconds")
        row[f"{name}_items_per_s"] = files / seconds if seconds else None
        row[f"{name}_rss_mib"] = median_of(runs, name, "peak_rss_mib")
        got = [r[name]["bytes"] for r in runs if r.get(name)]
        row[f"{name}_bytes"] = got[-1] if got else None
    return row


def add_ratios(grid: dict, lit: dict) -> None:
    """vs litdata = litdata seconds / grid seconds, per step (>1: grid is faster)."""
    for step in ("prepare", *PASSES):
        g, ld = grid.get(f"{step}_seconds"), lit.get(f"{step}_seconds")
        grid[f"{step}_vs_litdata"] = ld / g if g and ld else None


# ---------------------------------------------------------------- output


def fmt(value, spec: str) -> str:
    return spec.format(value) if value is not None else "-"


def format_table(report: dict) -> str:
    d = report["dataset"]
    rows = report["rows"]
    lines = [
        f"{d['name']}: {d['files']:,} files, {d['bytes']:,} bytes ({d['bytes'] / MB:,.1f} MB), "
        f"median of {report['repeat']}; items/s include the process start"
    ]
    head = (
        f"{'tool':26}{'prepare s':>11}{'first it/s':>12}{'warm it/s':>11}{'cold it/s':>11}"
        f"{'warm RSS MiB':>14}{'bytes read':>17}{'stored bytes':>17}"
    )
    lines.append(head)
    for row in rows:
        lines.append(
            f"{row['name']:26}{fmt(row['prepare_seconds'], '{:.2f}'):>11}"
            f"{fmt(row['first_items_per_s'], '{:,.0f}'):>12}"
            f"{fmt(row['warm_items_per_s'], '{:,.0f}'):>11}"
            f"{fmt(row['cold_items_per_s'], '{:,.0f}'):>11}"
            f"{fmt(row['warm_rss_mib'], '{:,.0f}'):>14}"
            f"{fmt(row['warm_bytes'], '{:,}'):>17}"
            f"{fmt(row['stored_bytes'], '{:,.0f}'):>17}"
        )
    grid = rows[0]
    if len(rows) > 1:
        lines.append(
            f"{'grid vs litdata':26}{fmt(grid['prepare_vs_litdata'], '{:.2f}x'):>11}"
            f"{fmt(grid['first_vs_litdata'], '{:.2f}x'):>12}"
            f"{fmt(grid['warm_vs_litdata'], '{:.2f}x'):>11}"
            f"{fmt(grid['cold_vs_litdata'], '{:.2f}x'):>11}"
        )
    lines.append("seconds (process wall / inside the loop):")
    for row in rows:
        cells = [
            f"{name} {fmt(row[f'{name}_seconds'], '{:.2f}')}/"
            f"{fmt(row[f'{name}_loop_seconds'], '{:.2f}')}"
            for name in PASSES
        ]
        lines.append(
            f"  {row['name']:26}prepare {fmt(row['prepare_seconds'], '{:.2f}')}  "
            + "  ".join(cells)
        )
    return "\n".join(lines)


def versions(litdata_python: str | None) -> dict[str, str]:
    found = {"python": platform.python_version()}
    try:
        found["grid"] = importlib.metadata.version("grid-datastores")
    except importlib.metadata.PackageNotFoundError:
        found["grid"] = "?"
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if commit:
        found["grid"] += f" (commit {commit})"
    if litdata_python:
        code = (
            "import importlib.metadata as m, platform;"
            "print(platform.python_version(), m.version('litdata'), m.version('torch'))"
        )
        out = subprocess.run(
            [litdata_python, "-c", code], capture_output=True, text=True, check=False
        ).stdout.split()
        if len(out) == 3:
            found.update(litdata_python=out[0], litdata=out[1], torch=out[2])
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data",
        type=Path,
        default=Path("/tmp/bench-data"),
        help="where the datasets live; uses ROOT/small (default /tmp/bench-data)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; prints medians")
    ap.add_argument("--json-out", type=Path, help="also write all runs and medians as JSON")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"only the first {QUICK_FOLDERS} folders of small (hard-linked into a scratch dir)",
    )
    ap.add_argument("--skip-litdata", action="store_true", help="measure grid only")
    ap.add_argument(
        "--grid-fsync", action="store_true", help="create with fsync (default GRID_FSYNC=0)"
    )
    ap.add_argument(
        "--litdata-venv",
        type=Path,
        default=Path(os.environ.get("LITDATA_VENV", DEFAULT_LITDATA_VENV)),
        help="venv made by bench/litdata_setup.sh (default $LITDATA_VENV or /tmp/litdata-venv)",
    )
    ap.add_argument(
        "--tmp", type=Path, default=Path("/tmp"), help="where scratch folders go (default /tmp)"
    )
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    tools = [Grid(args.grid_fsync)]
    if not args.skip_litdata:
        if not (args.litdata_venv / "bin" / "python").exists():
            print(
                f"error: no litdata venv at {args.litdata_venv}; run `bash bench/litdata_setup.sh`"
                " (or pass --skip-litdata)",
                file=sys.stderr,
            )
            return 2
        tools.append(Litdata(args.litdata_venv))
    args.tmp.mkdir(parents=True, exist_ok=True)
    generated = quick = None
    try:
        src, made = ensure_small(args.data)
        generated = src if made else None
        if args.quick:
            src = quick = quick_copy(src, args.tmp)
        files, size = tree_size(src)
        name = f"{DATASET} (quick: {QUICK_FOLDERS} folders)" if args.quick else DATASET
        print(f"== {name}: {files:,} files, {size / MB:,.1f} MB ({src})", flush=True)
        runs: dict[str, list[dict]] = {t.label: [] for t in tools}
        for rep in range(1, args.repeat + 1):
            for tool in tools:

                def log(msg: str, rep: int = rep) -> None:
                    print(f"  [{rep}/{args.repeat}] {msg}", flush=True)

                runs[tool.label].append(measure(tool, src, args.tmp, files, size, log))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if quick:
            shutil.rmtree(quick, ignore_errors=True)
        if generated:
            shutil.rmtree(generated, ignore_errors=True)
            (generated.parent / f"{DATASET}.manifest.json").unlink(missing_ok=True)
    rows = [summarise(t.label, runs[t.label], files) for t in tools]
    if len(rows) > 1:
        add_ratios(rows[0], rows[1])
    report = {
        "machine": {"host": platform.node(), "cpus": os.cpu_count()},
        "versions": versions(None if args.skip_litdata else tools[1].python),
        "dataset": {"name": name, "files": files, "bytes": size, "path": str(src)},
        "repeat": args.repeat,
        "grid_fsync": args.grid_fsync,
        "rows": rows,
    }
    print()
    print(format_table(report))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
