#!/usr/bin/env python3
"""Benchmark a PyTorch training-style input loop over ``/datastores`` in ``grid run``, and the
time ``grid run`` takes to start a script.

1. The input loop (torchvision-free), on the ``small`` dataset (ImageNet-like: N files of
   2-200 KiB in 100 class folders; default N = 50,000, 2.2 GB). A map-style
   ``torch.utils.data.Dataset`` over the dataset's sorted file list; ``__getitem__`` reads the
   file's bytes, "decodes" them with ``torch.frombuffer(bytearray(data), dtype=torch.uint8)``
   and a reduction over every byte (``.sum(dtype=torch.int64)``, also a content checksum), and
   returns (the uint8 tensor, its byte sum, the label = index of the class folder). A
   ``DataLoader(batch_size=64, shuffle=True, num_workers=4, collate_fn=...)`` with a fixed
   seed (``torch.Generator().manual_seed(0)``) runs two epochs in one process: "cold" is the
   first, "warm" the second. Each epoch is timed by the loop itself, from ``iter(loader)``
   (so including the fork of the 4 workers) to the last batch; listing the files is timed
   apart ("list s"). Every epoch checks that it got exactly the source's items and bytes, and
   all rows must agree on the sum of every byte. The loop runs as a fresh child process
   (``run_bench.py --loop SOURCE``) in three ways:

     limit        local disk: the source folder itself
     ours         ``grid run --datastore small run_bench.py --loop '$GRID_DATASTORE_SMALL'``:
                  the version mounted read-only (FUSE) at /datastores/small/1 inside the run's
                  private mount namespace; the figures exclude grid's start (timed inside)
     alternative  fsspec, embedded (no mount): ``grid://small/1/<path>``; the listing comes
                  from ``fs.find``; each worker opens its own ``fsspec.filesystem("grid")``
                  after the fork (fsspec drops instances made in another pid) and reads each
                  file with ``fs.open(path, "rb").read()``

   "vs local" is the row's items/s divided by local disk's, cold/warm (target: warm >= 0.9).

2. Start latency: seconds from just before ``Popen`` to the moment the first line of a script
   that prints one line at once (``print("ready", flush=True)``) arrives on the stdout pipe;
   the median of 5 (``--starts``). Rows: ``python first_line.py`` alone (the floor, the
   project's .venv python), ``grid run first_line.py`` with no datastore and ``grid run
   --datastore small first_line.py`` (target <= 1 s). "exit s" is the median to the exit.

Setup (untimed): the dataset is generated if missing (``../shared/bench/make_datasets.py
--root ROOT --only small --small-files N --jobs 2``; deleted again at the end unless
``--keep-data``); a fresh GRID_HOME under ``--tmp`` gets ``GRID_FSYNC=0 grid datastore create
SRC --name small`` (version 1) and is deleted at the end. No page cache is dropped: before each
loop the source folder and GRID_HOME are read once (``tar | cat``), so every row starts with its
backing files in the page cache; "cold" is a fresh process (and, for grid run, a fresh mount).

Needs torch in the project's venv (bench only, not a dependency of grid; this exact pin takes
the CPU wheel)::

    .venv/bin/pip install torch==2.13.0

Run it from the repository root (as root: ``grid run`` mounts with FUSE in a namespace)::

    .venv/bin/python bench/run_bench.py --quick            # 3,000 files, a sanity check
    .venv/bin/python bench/run_bench.py                    # 50,000 files
    .venv/bin/python bench/run_bench.py --small-files 20000 --json-out /tmp/run.json

Numbers on shared 2-core VMs are noisy: compare the ratios within one run.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    MB,
    REPO_ROOT,
    BenchError,
    Timer,
    ensure_small,
    grid_cli,
    median_of,
    remove_dataset,
    table,
    tree_size,
    venv_python,
    warm_cache,
)

NAME = "small"
DEFAULT_FILES = 50_000
QUICK_FILES = 3_000
BATCH = 64
WORKERS = 4
SEED = 0
EPOCHS = ("cold", "warm")
FIRST_LINE = 'print("ready", flush=True)\n'
TORCH_HINT = "torch is missing: .venv/bin/pip install torch==2.13.0 (the CPU wheel; bench only)"


# ---------------------------------------------------------------- the loop (child process)


class FileDataset:
    """Map-style dataset over (path, label); ``fs`` None reads local files, else fsspec.
    Subclasses ``torch.utils.data.Dataset`` at run time (torch is imported lazily)."""

    def __init__(self, items: list[tuple[str, int]], protocol: str | None) -> None:
        self.items = items
        self.protocol = protocol
        self._fs = None
        self._pid = 0

    def __len__(self) -> int:
        return len(self.items)

    def read(self, path: str) -> bytes:
        if self.protocol is None:
            with open(path, "rb") as f:
                return f.read()
        if self._pid != os.getpid():  # the first read in this worker: its own filesystem
            import fsspec

            self._fs, self._pid = fsspec.filesystem(self.protocol), os.getpid()
        with self._fs.open(path, "rb") as f:
            return f.read()

    def __getitem__(self, index: int):
        import torch

        path, label = self.items[index]
        tensor = torch.frombuffer(bytearray(self.read(path)), dtype=torch.uint8)
        return tensor, int(tensor.sum(dtype=torch.int64)), label


def collate(batch):
    import torch

    tensors, sums, labels = zip(*batch, strict=True)
    return list(tensors), torch.tensor(sums, dtype=torch.int64), torch.tensor(labels)


def list_source(source: str) -> tuple[list[tuple[str, int]], str | None]:
    """(sorted [(path, class index)], fsspec protocol or None) of a folder or grid:// URL."""
    if source.startswith("grid://"):
        import fsspec

        fs = fsspec.filesystem("grid")
        paths = sorted(fs.find(source))
        protocol: str | None = "grid"
    else:
        paths = sorted(
            os.path.join(dirpath, n) for dirpath, _, names in os.walk(source) for n in names
        )
        protocol = None
    classes = {c: i for i, c in enumerate(sorted({p.rsplit("/", 2)[-2] for p in paths}))}
    return [(p, classes[p.rsplit("/", 2)[-2]]) for p in paths], protocol


def run_loop(source: str, epochs: int) -> dict:
    try:
        import torch
        from torch.utils.data import DataLoader, Dataset
    except ImportError:
        raise SystemExit(TORCH_HINT) from None

    source = os.path.expandvars(source)
    with Timer() as listing:
        items, protocol = list_source(source)
    dataset_cls = type("TorchFileDataset", (FileDataset, Dataset), {})
    loader = DataLoader(
        dataset_cls(items, protocol),
        batch_size=BATCH,
        shuffle=True,
        num_workers=WORKERS,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(SEED),
    )
    out = {"source": source, "list_seconds": listing.seconds, "epochs": []}
    for _ in range(epochs):
        count = total = checksum = 0
        labels = set()
        with Timer() as t:
            for tensors, sums, batch_labels in loader:
                count += len(tensors)
                total += sum(x.numel() for x in tensors)
                checksum += int(sums.sum())
                labels.update(batch_labels.tolist())
        out["epochs"].append(
            {
                "seconds": t.seconds,
                "items": count,
                "bytes": total,
                "checksum": checksum,
                "classes": len(labels),
            }
        )
        print(f"epoch {len(out['epochs'])}: {count} items in {t.seconds:.2f} s", file=sys.stderr)
    return out


# ---------------------------------------------------------------- the parent


def loop_child(argv: list[str], env: dict[str, str], label: str) -> dict:
    """Run a loop child (maybe under grid run); parse its ``RESULT {json}`` line."""
    res = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr + res.stdout)[-3000:]
        raise BenchError(f"{label}: exit {res.returncode}: {' '.join(argv)}\n{tail}")
    return json.loads(lines[-1][len("RESULT ") :])


def first_line_seconds(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first stdout line, seconds to the exit) of one launch of ``argv``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    first = time.perf_counter() - start
    _rest, err = proc.communicate()
    done = time.perf_counter() - start
    if proc.returncode != 0 or line.strip() != b"ready":
        raise BenchError(f"exit {proc.returncode}: {' '.join(argv)}: {line!r} {err[-2000:]!r}")
    return first, done


def loop_rows(src: Path, home: Path, env: dict[str, str], files: int, size: int, log) -> list:
    me = str(Path(__file__).resolve())
    py = venv_python()
    mount_var = "$GRID_DATASTORE_" + NAME.upper()
    runs = [
        ("local disk (limit)", [py, me, "--loop", str(src)]),
        (
            "grid run /datastores (ours)",
            [*grid_cli(), "run", "--datastore", NAME, me, "--loop", mount_var],
        ),
        ("fsspec grid:// (embedded)", [py, me, "--loop", f"grid://{NAME}/1"]),
    ]
    rows = []
    for label, argv in runs:
        os.sync()
        warm_cache(src)
        warm_cache(home)
        result = loop_child(argv, env, label)
        for name, epoch in zip(EPOCHS, result["epochs"], strict=True):
            bad = epoch["items"] != files or epoch["bytes"] != size or epoch["classes"] != 100
            log(
                f"{label}: {name} epoch {epoch['seconds']:.2f} s, {epoch['items']:,} items, "
                f"{epoch['bytes']:,} bytes" + ("  MISMATCH" if bad else "")
            )
            if bad:
                raise BenchError(f"{label} {name}: expected {files:,} items and {size:,} bytes")
        rows.append({"name": label, "argv": argv, **result})
    sums = {e["checksum"] for r in rows for e in r["epochs"]}
    if len(sums) != 1:
        raise BenchError(f"the rows read different bytes (byte sums {sorted(sums)})")
    local = rows[0]
    for row in rows:
        for i, name in enumerate(EPOCHS):
            e = row["epochs"][i]
            row[f"{name}_items_per_s"] = e["items"] / e["seconds"]
            row[f"{name}_mb_per_s"] = e["bytes"] / MB / e["seconds"]
            row[f"{name}_vs_local"] = local["epochs"][i]["seconds"] / e["seconds"]
    return rows


def start_rows(work: Path, env: dict[str, str], repeat: int, log) -> list:
    script = work / "first_line.py"
    script.write_text(FIRST_LINE)
    grid = [*grid_cli(), "run"]
    cases = [
        ("python first_line.py (floor)", [venv_python(), str(script)]),
        ("grid run first_line.py", [*grid, str(script)]),
        (f"grid run --datastore {NAME} first_line.py", [*grid, "--datastore", NAME, str(script)]),
    ]
    rows = []
    for label, argv in cases:
        first_line_seconds(argv, env)  # one untimed launch: imports in the page cache
        exits: list[float] = []

        def once(argv: list[str] = argv, exits: list[float] = exits) -> float:
            first, done = first_line_seconds(argv, env)
            exits.append(done)
            return first

        median, values = median_of(once, repeat)
        log(f"{label}: first line {', '.join(f'{v:.3f}' for v in values)} s")
        rows.append(
            {
                "name": label,
                "argv": argv,
                "first_line_seconds": median,
                "values": values,
                "exit_seconds": statistics.median(exits),
            }
        )
    return rows


def format_report(report: dict) -> str:
    d = report["dataset"]
    f2 = "{:.2f}".format
    head = (
        f"input loop: {d['files']:,} files, {d['bytes'] / MB:,.1f} MB, batch {BATCH}, "
        f"{WORKERS} workers, shuffle seed {SEED}; cold = 1st epoch, warm = 2nd (same process)"
    )
    rows = [
        [
            r["name"],
            f2(r["list_seconds"]),
            f"{r['cold_items_per_s']:,.0f}",
            f"{r['warm_items_per_s']:,.0f}",
            f"{r['cold_mb_per_s']:,.0f}",
            f"{r['warm_mb_per_s']:,.0f}",
            f"{r['cold_vs_local']:.2f}x",
            f"{r['warm_vs_local']:.2f}x",
        ]
        for r in report["loop"]
    ]
    loop = table(
        [
            "source",
            "list s",
            "cold it/s",
            "warm it/s",
            "cold MB/s",
            "warm MB/s",
            "cold vs local",
            "warm vs local",
        ],
        rows,
    )
    starts = table(
        ["launch", "first line s (median)", "exit s", "each (s)"],
        [
            [
                r["name"],
                f"{r['first_line_seconds']:.3f}",
                f"{r['exit_seconds']:.3f}",
                " ".join(f"{v:.3f}" for v in r["values"]),
            ]
            for r in report["start"]
        ],
    )
    return f"{head}\n{loop}\n\nstart latency, median of {report['starts']}:\n{starts}"


def versions() -> dict[str, str]:
    code = "import importlib.metadata as m; print(m.version('grid-datastores'), m.version('torch'))"
    out = subprocess.run(
        [venv_python(), "-c", code], capture_output=True, text=True, check=False
    ).stdout.split()
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    found = {"python": platform.python_version()}
    if len(out) == 2:
        found.update(grid=f"{out[0]} (commit {commit})", torch=out[1])
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data",
        type=Path,
        help="data root holding ROOT/small (default /tmp/bench-data for 50,000 files, "
        "else /tmp/bench-data-N)",
    )
    ap.add_argument("--small-files", type=int, help=f"files in small (default {DEFAULT_FILES:,})")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_FILES:,} files (a sanity check)")
    ap.add_argument("--starts", type=int, default=5, help="launches per start row (median)")
    ap.add_argument("--skip-loop", action="store_true", help="only the start latency")
    ap.add_argument("--keep-data", action="store_true", help="keep a dataset this run made")
    ap.add_argument("--json-out", type=Path, help="also write the report as JSON")
    ap.add_argument(
        "--tmp", type=Path, default=Path("/tmp"), help="where scratch folders go (default /tmp)"
    )
    ap.add_argument("--loop", metavar="SOURCE", help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=len(EPOCHS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.small_files is None:
        args.small_files = QUICK_FILES if args.quick else DEFAULT_FILES
    if args.data is None:
        n = args.small_files
        args.data = Path("/tmp/bench-data" + ("" if n == DEFAULT_FILES else f"-{n}"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.loop:
        print("RESULT " + json.dumps(run_loop(args.loop, args.epochs)), flush=True)
        return 0
    probe = subprocess.run([venv_python(), "-c", "import torch"], capture_output=True, check=False)
    if probe.returncode != 0 and not args.skip_loop:
        print(f"error: {TORCH_HINT}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(f"  {msg}", flush=True)

    args.tmp.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-bench-", dir=args.tmp))
    home = work / "home"
    env = {**os.environ, "GRID_HOME": str(home)}
    env.pop("GRID_FSYNC", None)
    src = generated = None
    try:
        src, made = ensure_small(args.data, args.small_files)
        generated = src if made else None
        files, size = tree_size(src)
        print(f"== {NAME}: {files:,} files, {size / MB:,.1f} MB ({src})", flush=True)
        with Timer() as t:
            create = [*grid_cli(), "datastore", "create", str(src), "--name", NAME]
            res = subprocess.run(
                create, env={**env, "GRID_FSYNC": "0"}, capture_output=True, text=True
            )
        if res.returncode != 0:
            raise BenchError(f"{' '.join(create)} failed:\n{res.stderr[-2000:]}")
        log(f"setup: grid datastore create {t.seconds:.1f} s (GRID_FSYNC=0, untimed)")
        loop = [] if args.skip_loop else loop_rows(src, home, env, files, size, log)
        start = start_rows(work, env, args.starts, log)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if generated and not args.keep_data:
            remove_dataset(generated)
    report = {
        "machine": {"host": platform.node(), "cpus": os.cpu_count()},
        "versions": versions(),
        "dataset": {"name": NAME, "files": files, "bytes": size, "path": str(src)},
        "starts": args.starts,
        "loop": loop,
        "start": start,
    }
    print()
    if loop:
        print(format_report(report))
    else:
        print(format_report({**report, "loop": []}))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
