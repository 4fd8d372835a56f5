#!/usr/bin/env python3
"""Benchmark ``grid.torch``'s datasets through a PyTorch DataLoader against litdata and local files.

All contenders read the same folder (default ``small`` = 50,000 files of 2-200 KiB, 2.1 GB in
100 folders) through ``torch.utils.data.DataLoader(dataset, batch_size=64, num_workers=2,
collate_fn=<the list as is>)``; an item is ``(relative path, bytes)``:

  grid     ``grid datastore create SRC --name bench-torch`` into a fresh ``GRID_HOME``
           (``GRID_FSYNC=0``), then ``grid.torch.IterableDataset("bench-torch", batch_size=64,
           home=...)`` with ``shuffle=False`` and with ``shuffle=True, seed=0``, and the map-style
           ``grid.torch.Dataset``. grid checks every sample against its BLAKE3 id.
  litdata  ``iter_bench``'s ``litdata.optimize`` (64 MB chunks, 2 workers; litdata venv), then
           ``litdata.StreamingDataset(OUT, shuffle=False / True, seed=0, transform=...)``, the
           transform copying the memoryview to ``bytes`` (a memoryview does not pickle).
  local    a map-style dataset over the source folder (``os.walk``, sorted) whose
           ``__getitem__`` returns ``open(path, 'rb').read()``.

Map-style datasets run with the DataLoader's shuffle off (storage / sorted order).

Each pass is a fresh process (``--worker``, under the contender's python): interpreter start,
imports, listing and forking the two workers all count. Per dataset: ``first`` (right after
prepare), ``warm`` (again, all in the page cache), ``cold`` (after ``sync; echo 3 >
/proc/sys/vm/drop_caches``, needs root). Per pass: wall seconds from ``Popen`` to exit
(items/s = files / those seconds); time to the first batch (``Popen`` to the first batch in
the main process, both ``time.monotonic``); ``max RSS`` from ``os.wait4`` (the largest resident
set of the process or of a DataLoader worker it reaped: a max, not a sum); ``sum PSS``, the
peak of the summed proportional set size (``/proc/PID/smaps_rollup``: shared pages split
between their sharers, file-backed mmap pages included) of the process and all descendants,
sampled every 0.1 s by a thread of the main process. A pass fails unless it hands out every
file once (items, distinct paths) and as many bytes as the source holds ("bytes verified").

``vs litdata``: a grid row's items/s over litdata's with the same shuffle (the map-style row:
over unshuffled litdata); ``vs local``: over the local files row's.

Run it from the repository root::

    bash bench/litdata_setup.sh                                   # litdata in /tmp/litdata-venv
    .venv/bin/python bench/torch_bench.py --quick                 # 2 folders, a sanity check
    .venv/bin/python bench/torch_bench.py --data /tmp/rr-data --json-out /tmp/torch.json

A missing ``DATA/small`` is generated (``harness.ensure_small``) and deleted at the end; every
GRID_HOME and litdata output lives in a scratch folder under ``--tmp``, deleted after use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import iter_bench
from create_bench import run_timed  # stdlib-only helpers, usable in either venv
from harness import MB, BenchError, grid_cli, table, venv_python
from iter_bench import PASSES, Litdata, run_child

GRID_NAME = "bench-torch"
SMALL_FILES = 50_000
BATCH = 64
WORKERS = 2
SEED = 0
SAMPLE_SECONDS = 0.1
# group -> its contenders: (label, worker kind, shuffle)
GROUPS = {
    "grid": [
        ("grid IterableDataset", "grid-iter", False),
        ("grid IterableDataset shuffle", "grid-iter", True),
        ("grid Dataset (map)", "grid-map", False),
    ],
    "litdata": [
        ("litdata StreamingDataset", "litdata", False),
        ("litdata StreamingDataset shuffle", "litdata", True),
    ],
    "local": [("local files Dataset (map)", "local", False)],
}
VS_LITDATA = {
    "grid IterableDataset": "litdata StreamingDataset",
    "grid IterableDataset shuffle": "litdata StreamingDataset shuffle",
    "grid Dataset (map)": "litdata StreamingDataset",
}
LOCAL = "local files Dataset (map)"


# ---------------------------------------------------------------- workers (child processes)


def as_list(batch: list) -> list:
    """The DataLoader's collate_fn: the batch's items as they are."""
    return batch


class LocalFiles:
    """Map-style dataset over a folder: item i = (relative path, the file's bytes)."""

    def __init__(self, root: str) -> None:
        self.root = root
        walked = ((d, n) for d, _, names in os.walk(root) for n in names)
        self.paths = sorted(os.path.relpath(os.path.join(d, n), root) for d, n in walked)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[str, bytes]:
        path = self.paths[index]
        with open(os.path.join(self.root, path), "rb") as f:
            return path, f.read()


def litdata_item(item: dict) -> tuple[str, bytes]:
    return item["path"], bytes(item["data"])


class PeakMemory(threading.Thread):
    """Peak summed Rss and Pss (MiB) of this process and its descendants, sampled."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.rss = self.pss = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        pids, rss, pss = [os.getpid()], 0, 0
        for pid in pids:  # grows with each process's children
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        pids.extend(int(c) for c in f.read().split())
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key in ("Rss", "Pss"):
                            kib = int(value.split()[0])
                            rss, pss = (rss + kib, pss) if key == "Rss" else (rss, pss + kib)
            except (OSError, ValueError):
                continue  # gone meanwhile
        self.rss, self.pss = max(self.rss, rss / 1024), max(self.pss, pss / 1024)


def make_dataset(kind: str, source: str, shuffle: bool):
    if kind.startswith("grid"):
        import grid.torch

        if kind == "grid-map":
            return grid.torch.Dataset(GRID_NAME, home=source)
        return grid.torch.IterableDataset(
            GRID_NAME,
            shuffle=shuffle,
            seed=SEED,
            batch_size=BATCH,
            home=source,
        )
    if kind == "litdata":
        import litdata

        return litdata.StreamingDataset(source, shuffle=shuffle, seed=SEED, transform=litdata_item)
    if kind == "local":
        return LocalFiles(source)
    raise SystemExit(f"unknown worker {kind}")


def run_worker(kind: str, source: str, shuffle: str) -> int:
    start = time.monotonic()
    import torch.utils.data

    memory = PeakMemory()
    memory.start()
    dataset = make_dataset(kind, source, shuffle == "1")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, num_workers=WORKERS, collate_fn=as_list
    )
    first, items, total, paths = None, 0, 0, set()
    for batch in loader:
        first = first or time.monotonic()
        for path, data in batch:
            items += 1
            total += len(data)
            paths.add(path)
    end = time.monotonic()
    memory.done.set()
    memory.join()
    result = {"items": items, "distinct": len(paths), "bytes": total, "first_batch_at": first}
    result.update(process_seconds=end - start, sum_rss_mib=memory.rss, sum_pss_mib=memory.pss)
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------- orchestration


def setup(group: str, src: Path, work: Path, lit: Litdata | None) -> tuple:
    """Prepare a group's data; return (python, env, source argument, prepare's timing)."""
    if group == "grid":
        env = {**os.environ, "GRID_HOME": str(work / "home"), "GRID_FSYNC": "0"}
        prep = run_timed([*grid_cli(), "datastore", "create", str(src), "--name", GRID_NAME], env)
        return venv_python(), env, str(work / "home"), prep
    if group == "litdata" and lit is not None:
        prep = lit.prepare(src, work)  # iter_bench's optimize, under the litdata venv
        return lit.python, lit.env(work), str(work / "out"), prep
    return venv_python(), dict(os.environ), str(src), None


def one_pass(python: str, env: dict, kind: str, source: str, shuffle: bool, expect) -> dict:
    argv = [python, str(Path(__file__).resolve()), "--worker", kind, source, str(int(shuffle))]
    launch = time.monotonic()
    res = run_child(argv, env)
    res["first_batch_seconds"] = res.pop("first_batch_at") - launch
    got = (res["items"], res["distinct"], res["bytes"])
    if got != expect:
        raise BenchError(f"{kind} read (items, distinct paths, bytes) {got}, expected {expect}")
    return res


def measure_group(group: str, src: Path, base: Path, expect, lit, log) -> dict:
    """Prepare one group's data, then the first, warm and cold pass of each of its contenders."""
    work = Path(tempfile.mkdtemp(prefix=f"torch-bench-{group}-", dir=base))
    try:
        os.sync()
        harness.warm_cache(src)
        python, env, source, prep = setup(group, src, work, lit)
        if prep:
            log(f"{group}: prepare {prep['seconds']:.2f} s")
        out: dict = {f"{group} prepare": prep}
        for label, kind, shuffle in GROUPS[group]:
            out[label] = {}
            for name in PASSES:
                if name == "cold" and not iter_bench.drop_caches():
                    out[label][name] = None
                    continue
                res = out[label][name] = one_pass(python, env, kind, source, shuffle, expect)
                log(
                    f"{label}: {name} {res['seconds']:.2f} s (first batch "
                    f"{res['first_batch_seconds']:.2f} s), sum PSS {res['sum_pss_mib']:.0f} MiB,"
                    f" max RSS {res['peak_rss_mib']:.0f} MiB, {res['bytes']:,} bytes verified"
                )
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def median(runs: list[dict], label: str, name: str, key: str) -> float | None:
    values = [r[label][name][key] for r in runs if r.get(label) and r[label].get(name)]
    return statistics.median(values) if values else None


def summarise(runs: list[dict], labels: list[str], files: int) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for label in labels:
        row = rows[label] = {}
        for name in PASSES:
            seconds = median(runs, label, name, "seconds")
            row[f"{name}_items_per_s"] = files / seconds if seconds else None
            for key in ("seconds", "first_batch_seconds", "sum_pss_mib", "peak_rss_mib", "bytes"):
                row[f"{name}_{key}"] = median(runs, label, name, key)
    for label, row in rows.items():
        for name in PASSES[1:]:  # warm, cold
            mine = row[f"{name}_items_per_s"]
            for tag, other in (("litdata", VS_LITDATA.get(label)), ("local", LOCAL)):
                theirs = rows.get(other, {}).get(f"{name}_items_per_s") if other else None
                ok = label.startswith("grid") and mine and theirs
                row[f"{name}_vs_{tag}"] = mine / theirs if ok else None
    return rows


def fmt(value, spec: str) -> str | None:
    return spec.format(value) if value is not None else None


COLUMNS = [  # (header, row key, format)
    *((f"{p} it/s", f"{p}_items_per_s", "{:,.0f}") for p in ("warm", "cold")),
    *((f"1st batch {p} s", f"{p}_first_batch_seconds", "{:.2f}") for p in ("warm", "cold")),
    ("sum PSS MiB", "warm_sum_pss_mib", "{:,.0f}"),
    ("max RSS MiB", "warm_peak_rss_mib", "{:,.0f}"),
    ("bytes read", "warm_bytes", "{:,.0f}"),
]
RATIOS = [
    (f"{p} vs {o}", f"{p}_vs_{o}", "{:.2f}x") for o in ("litdata", "local") for p in PASSES[1:]
]


def format_tables(rows: dict[str, dict]) -> str:
    out = []
    for first, columns in (("contender", COLUMNS), ("grid row", RATIOS)):
        body = [
            [label, *(fmt(r[key], spec) for _, key, spec in columns)]
            for label, r in rows.items()
            if columns is COLUMNS or label.startswith("grid")
        ]
        out.append(table([first, *(c[0] for c in columns)], body))
    return "\n\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=Path("/tmp/rr-data"), help="uses DATA/small")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; prints medians")
    ap.add_argument("--json-out", type=Path, help="also write every run and the medians")
    ap.add_argument("--quick", action="store_true", help=f"only {iter_bench.QUICK_FOLDERS} folders")
    ap.add_argument("--skip-litdata", action="store_true", help="grid and local files only")
    ap.add_argument(
        "--litdata-venv",
        type=Path,
        default=Path(os.environ.get("LITDATA_VENV", iter_bench.DEFAULT_LITDATA_VENV)),
        help="venv made by bench/litdata_setup.sh (default $LITDATA_VENV or /tmp/litdata-venv)",
    )
    ap.add_argument("--tmp", type=Path, default=Path("/tmp"), help="scratch folders go here")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(*args.worker)
    lit = None
    if not args.skip_litdata:
        if not (args.litdata_venv / "bin" / "python").exists():
            print(
                f"error: no {args.litdata_venv}; run bash bench/litdata_setup.sh", file=sys.stderr
            )
            return 2
        lit = Litdata(args.litdata_venv)
    groups = [g for g in GROUPS if g != "litdata" or lit]
    labels = [label for g in groups for label, _, _ in GROUPS[g]]
    args.tmp.mkdir(parents=True, exist_ok=True)
    generated = quick = None
    try:
        src, made = harness.ensure_small(args.data, SMALL_FILES)
        generated = src if made else None
        if args.quick:
            src = quick = iter_bench.quick_copy(src, args.tmp)
        files, size = harness.tree_size(src)
        print(f"== {src}: {files:,} files, {size / MB:,.1f} MB", flush=True)
        runs: list[dict] = []
        for rep in range(1, args.repeat + 1):
            run: dict = {}
            for group in groups:

                def log(msg: str, rep: int = rep) -> None:
                    print(f"  [{rep}/{args.repeat}] {msg}", flush=True)

                run.update(measure_group(group, src, args.tmp, (files, files, size), lit, log))
            runs.append(run)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if quick:
            shutil.rmtree(quick, ignore_errors=True)
        if generated:
            harness.remove_dataset(generated)
    rows = summarise(runs, labels, files)
    found = iter_bench.versions(lit.python if lit else None)
    print(f"\n{files:,} files, {size:,} bytes; median of {args.repeat}; items/s count the process")
    print(format_tables(rows))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    if args.json_out:
        report = {"files": files, "bytes": size, "versions": found, "rows": rows, "runs": runs}
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
