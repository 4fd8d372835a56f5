#!/usr/bin/env python3
"""Benchmark team mode under load: many clients at once on one `grid server`, beside the peers.

One run on 127.0.0.1, bounded in time and count: server_bench's services (a throwaway
PostgreSQL cluster, SeaweedFS ``weed server -s3``, ``grid server`` with one process that also
runs the import jobs, started here with ``--allow-private-urls`` so its worker may fetch a
loopback URL), the ``small`` dataset (ImageNet-like files of 2-200 KiB in 100 class folders,
``--files`` of them, made by ../shared/bench/make_datasets.py via harness.ensure_small) in the
page cache. Three parts, each printed as a table with the peer measured in the same run:

  creates   ``--clients`` (8) ``grid datastore create SLICE --name dN`` processes started
            together, each of a different slice (disjoint class folders, hard links), each
            with its own GRID_HOME, logged in (GRID_URL + GRID_API_KEY) as its own fresh user,
            GRID_FSYNC unset; against one client alone creating slice 0, and against
            ``aws s3 sync SLICE s3://peers/...`` (8 at once, and 1 alone) into the same
            SeaweedFS. Aggregate files/s and MB/s = all slices / seconds until the last ends.
  readers   ``--reader-procs`` x ``--reader-threads`` (8 x 4 = 32) readers, each thread with
            its own warm ``RemoteClient`` (own GRID_HOME, one untimed call of each operation
            first), all started together for ``--read-seconds``: a mix, in turn, of ``ls`` of
            a 1,000-entry folder, ``stat`` of a file and ``read_bytes`` of a small file (72-88
            bytes), the file picked at random among the 1,000 (a client's first read of one
            fetches its blob from SeaweedFS, a presigned Range GET; later reads hit its blob
            cache). The peer: the same readers on boto3 straight to SeaweedFS's S3 gateway
            (``list_objects_v2`` of the same 1,000 keys, ``head_object``, ``get_object``).
            Requests/s, p50 / p99 / max per operation; target: grid ``ls`` p99 <= 50 ms.
  import    the dataset as a .tar.gz (``tar | gzip -1``, as bench/import_bench.py), served by
            bench/http_serve.py on 127.0.0.1: ``grid datastore create http://.../small.tar.gz``
            logged in (the server's worker fetches, unpacks and stores it; the client follows
            its progress), against ``curl -s URL | tar xz -C DIR`` and ``curl > /dev/null``.

Every row also shows the CPU seconds the grid server, SeaweedFS and PostgreSQL used meanwhile
(process trees, /proc/PID/stat), how busy the machine was, and the CPU seconds of everything
else on it ("others'": a shared VM's other users): everything shares this machine's cores.
Before each row, and after each grid row ("then jobs s"), the script waits until the server's
jobs (a create's verify job, an import) are done, from its /metrics. Errors under load are
counted, not fatal, and the grid server's log lines about them are printed at the end.

    .venv/bin/python bench/load_bench.py                     # defaults: 2.5-3.5 min on 2 cores
    .venv/bin/python bench/load_bench.py --files 800 --read-seconds 3   # a smoke run

The dataset (when this run generated it), the archive, the services, homes and object store
are deleted at the end, also on Ctrl-C, SIGTERM or an error. Needs root (or the postgres
user's rights) for PostgreSQL, the aws CLI, curl and tar.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # bench/ is not a package
import server_bench
from create_bench import MB, BenchError, grid_command, run_quiet, scratch, tree_size, warm_cache
from import_bench import SERVE, make_archive, shell_job, wait_http
from server_bench import (
    GRID_BUCKET,
    LS_ENTRIES,
    PEER_BUCKET,
    TARGET_LS_P99_MS,
    Services,
    free_port,
    log_tail,
    make_wide_tree,
    stop_process,
    summarise_latencies,
    tool_version,
    tree_cpu,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")

OPS = ("ls", "stat", "cat")
MIX = "mix"  # the readers' datastore: make_wide_tree's 1,000-entry folder "wide"
ERROR_MARKS = ("Traceback", "ERROR", "Error", "error", " 500 ", " 502 ", " 503 ", " 504 ")

# every child this run started and may still be running; killed on the way out
LIVE: list[subprocess.Popen] = []


def spawn(argv: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(argv, env=env, **kw)
    LIVE.append(proc)
    return proc


def kill_live() -> None:
    for proc in LIVE:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(10)
    LIVE.clear()


def start_server_allowing_private_urls(svc: Services) -> None:
    """server_bench's ``Services.start_server`` with ``--allow-private-urls`` appended to the
    ``grid server`` command (its launcher is looked up at call time, so wrapping it adds the
    flag without a second copy of the start-up code)."""
    plain = server_bench.grid_command
    code = (
        "import runpy, sys; sys.argv[0] = 'grid'; sys.argv.append('--allow-private-urls'); "
        "runpy.run_module('grid', run_name='__main__', alter_sys=True)"
    )
    server_bench.grid_command = lambda: [harness.venv_python(), "-c", code]
    try:
        svc.start_server()
    finally:
        server_bench.grid_command = plain


def postgres_pid(svc: Services) -> int | None:
    assert svc.pg_root is not None
    with contextlib.suppress(OSError, ValueError):
        return int((svc.pg_root / "data" / "postmaster.pid").read_text().split()[0])
    return None


class Meter:
    """CPU seconds the server, SeaweedFS and PostgreSQL use between ``start`` and ``stop``."""

    def __init__(self, svc: Services) -> None:
        self.pids = {"server": svc.server_pid(), "s3": svc.weed_pid(), "pg": postgres_pid(svc)}
        self.before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {k: tree_cpu(p) if p else 0.0 for k, p in self.pids.items()}
        with open("/proc/stat") as f:  # the machine: every process, ours and others'
            ticks = [int(x) for x in f.readline().split()[1:]]
        now["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # all but idle, iowait
        now["machine_total"] = sum(ticks) / CLK_TCK
        return now

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> dict[str, float]:
        """CPU seconds of each (``server_cpu``, ``s3_cpu``, ``pg_cpu``), of the whole machine
        (``machine_cpu``), and ``busy_pct``: how busy its cores were (100 = all, always)."""
        now = self._now()
        out = {f"{k}_cpu": now[k] - self.before[k] for k in self.pids}
        total = now["machine_total"] - self.before["machine_total"]
        out["machine_cpu"] = now["machine"] - self.before["machine"]
        out["busy_pct"] = 100 * out["machine_cpu"] / max(total, 1e-9)
        return out


def others_cpu(row: dict, ours: str) -> float:
    """CPU seconds the machine spent meanwhile on anything but the row's ``ours`` (its
    clients) and the three services: other users of a shared VM, the kernel, this script."""
    mine = row[ours] + row["server_cpu"] + row["s3_cpu"] + row["pg_cpu"]
    return max(0.0, row["machine_cpu"] - mine)


def open_jobs(svc: Services) -> int:
    """Jobs queued or running on the server (all users'), from its /metrics."""
    with urllib.request.urlopen(f"{svc.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("grid_jobs{") and ('state="queued"' in line or 'state="running"' in line)
    )


def drain_jobs(svc: Services, meter: Meter, limit: float = 300.0) -> dict:
    """Wait until the server's workers have no job left (a create's commit queues a verify
    job); the seconds that took and the services' CPU meanwhile, as ``jobs_*``."""
    meter.start()
    t0 = time.perf_counter()
    while open_jobs(svc):
        if time.perf_counter() - t0 > limit:
            raise BenchError(f"the server's jobs did not finish in {limit:g} s")
        time.sleep(0.1)
    used = meter.stop()
    return {
        "jobs_seconds": time.perf_counter() - t0,
        "jobs_server_cpu": used["server_cpu"],
        "jobs_s3_cpu": used["s3_cpu"],
    }


# ---------------------------------------------------------------- part 1: creates at once


def make_slices(src: Path, count: int, base: Path) -> list[Path]:
    """``count`` disjoint slices of ``src``'s class folders (hard links, same file system)."""
    folders = sorted(p for p in src.iterdir() if p.is_dir())
    out = []
    for i in range(count):
        dest = base / f"slice-{i}"
        for folder in folders[i::count]:
            shutil.copytree(folder, dest / folder.name, copy_function=os.link)
        out.append(dest)
    return out


def wait_rusage(proc: subprocess.Popen, t0: float, out: dict) -> None:
    _, status, usage = os.wait4(proc.pid, 0)
    out["seconds"] = time.perf_counter() - t0
    out["cpu"] = usage.ru_utime + usage.ru_stime
    proc.returncode = os.waitstatus_to_exitcode(status)


def run_together(jobs: list[tuple[list[str], dict[str, str]]], meter: Meter, work: Path) -> dict:
    """Start every (argv, env) at once; wall seconds until the last ends, each one's seconds
    and CPU, the services' CPU meanwhile, and the failures (exit code and stderr tail)."""
    results: list[dict] = [{} for _ in jobs]
    errs = [open(work / f"stderr-{i}", "w+b") for i in range(len(jobs))]  # noqa: SIM115
    try:
        meter.start()
        t0 = time.perf_counter()
        procs = [
            spawn(argv, env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            for (argv, env), err in zip(jobs, errs, strict=True)
        ]
        waiters = [
            threading.Thread(target=wait_rusage, args=(p, t0, r))
            for p, r in zip(procs, results, strict=True)
        ]
        for w in waiters:
            w.start()
        for w in waiters:
            w.join()
        wall = time.perf_counter() - t0
        out = {"seconds": wall, **meter.stop()}
        failures = []
        for proc, err in zip(procs, errs, strict=True):
            if proc.returncode:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip()[-1500:]
                failures.append(f"exit {proc.returncode}: {tail}")
        out["failures"] = failures
        out["each_seconds"] = [r["seconds"] for r in results]
        out["client_cpu"] = sum(r["cpu"] for r in results)
        return out
    finally:
        for err in errs:
            err.close()


def measure_creates(svc: Services, slices: list[Path], base: Path) -> list[dict]:
    """The four rows: grid 1 client, grid N clients, aws 1, aws N (each on fresh homes/users)."""
    meter = Meter(svc)
    sizes = [tree_size(s) for s in slices]
    work = scratch("creates", base)
    rows = []
    try:
        run_id = uuid.uuid4().hex[:6]

        def grid_jobs(which: list[int], tag: str) -> list[tuple[list[str], dict[str, str]]]:
            keys: list[str] = [""] * len(which)

            def make(j: int) -> None:
                keys[j] = svc.new_user()

            makers = [threading.Thread(target=make, args=(j,)) for j in range(len(which))]
            for t in makers:
                t.start()
            for t in makers:
                t.join()
            if not all(keys):
                raise BenchError("could not make the users")
            out = []
            for j, i in enumerate(which):
                env = svc.client_env(work / f"home-{tag}-{i}", keys[j])
                env.pop("GRID_FSYNC", None)
                argv = [*grid_command(), "datastore", "create", str(slices[i]), "--name", f"d{i}"]
                out.append((argv, env))
            return out

        def aws_jobs(which: list[int], tag: str) -> list[tuple[list[str], dict[str, str]]]:
            env = {**os.environ, **svc.aws_env}
            return [(aws_sync(svc, slices[i], f"{tag}-{run_id}-{i}"), env) for i in which]

        everyone = list(range(len(slices)))
        plan = [
            ("grid create, 1 client (slice 0)", "ours", grid_jobs, [0], "g1"),
            (f"grid create, {len(slices)} clients at once", "ours", grid_jobs, everyone, "gn"),
            ("aws s3 sync, 1 process (slice 0)", "peer", aws_jobs, [0], "a1"),
            (f"aws s3 sync, {len(slices)} processes at once", "peer", aws_jobs, everyone, "an"),
        ]
        for label, kind, make_jobs, which, tag in plan:
            jobs = make_jobs(which, tag)
            for s in slices:
                warm_cache(s)
            os.sync()
            drain_jobs(svc, meter)
            res = run_together(jobs, meter, work)
            if kind == "ours":
                res.update(drain_jobs(svc, meter))
            files = sum(sizes[i][0] for i in which)
            size = sum(sizes[i][1] for i in which)
            row = {"label": label, "kind": kind, "clients": len(which), "files": files}
            row.update(res, bytes=size, files_per_s=files / res["seconds"])
            row["mb_per_s"] = size / MB / res["seconds"]
            rows.append(row)
            print(f"  {label}: {fmt_create(row)}", flush=True)
            for failure in res["failures"]:
                print(f"    FAILED {failure}", flush=True)
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def aws_sync(svc: Services, src: Path, prefix: str) -> list[str]:
    """``aws s3 sync SRC s3://peers/PREFIX/`` into the services' SeaweedFS, awscli defaults."""
    dest = f"s3://{PEER_BUCKET}/{prefix}/"
    return ["aws", "s3", "sync", str(src), dest, "--endpoint-url", svc.s3_url, "--only-show-errors"]


def fmt_create(row: dict) -> str:
    return (
        f"{row['seconds']:.2f} s, {row['files_per_s']:,.0f} files/s, {row['mb_per_s']:,.1f} MB/s"
        f", {len(row['failures'])} failed"
    )


# ---------------------------------------------------------------- part 2: concurrent readers


def reader(argv: list[str]) -> int:
    """A reader process: ``_reader KIND TARGET KEY HOMES THREADS SECONDS SEED``. KIND grid:
    each thread a RemoteClient(TARGET, KEY, HOMES/tN) on the datastore "mix"; KIND s3: each
    thread a boto3 client on bucket KEY of endpoint TARGET. Makes one untimed call of each
    operation per thread, prints "ready", waits for a line on stdin, runs the mix for SECONDS
    and prints JSON {"lat": {op: [seconds]}, "errors": {op: n}, "samples": [messages]}."""
    kind, target, key, homes, threads, seconds, seed = argv
    rng = random.Random(int(seed))
    paths = [f"wide/sample_{i:05d}.txt" for i in range(LS_ENTRIES)]

    if kind == "grid":
        from grid.client.remote import RemoteClient

        def make_ops(t: int):
            client = RemoteClient(target, key, os.path.join(homes, f"t{t}"))

            def ls(path: str) -> None:
                n = len(client.ls(MIX, 1, "wide"))
                if n != LS_ENTRIES:
                    raise RuntimeError(f"ls: {n} entries, not {LS_ENTRIES}")

            def stat(path: str) -> None:
                client.stat(MIX, 1, path)

            def cat(path: str) -> None:
                if not client.read_bytes(MIX, 1, path).startswith(b"sample "):
                    raise RuntimeError(f"cat {path}: unexpected bytes")

            return client.close, {"ls": ls, "stat": stat, "cat": cat}
    else:
        import boto3

        def make_ops(t: int):
            s3 = boto3.client("s3", endpoint_url=target)
            prefix = f"{MIX}/"

            def ls(path: str) -> None:
                page = s3.list_objects_v2(Bucket=key, Prefix=prefix + "wide/", MaxKeys=1000)
                if page["KeyCount"] != LS_ENTRIES:
                    raise RuntimeError(f"list: {page['KeyCount']} keys, not {LS_ENTRIES}")

            def stat(path: str) -> None:
                s3.head_object(Bucket=key, Key=prefix + path)

            def cat(path: str) -> None:
                body = s3.get_object(Bucket=key, Key=prefix + path)["Body"].read()
                if not body.startswith(b"sample "):
                    raise RuntimeError(f"get {path}: unexpected bytes")

            return s3.close, {"ls": ls, "stat": stat, "cat": cat}

    n = int(threads)
    made = [make_ops(t) for t in range(n)]
    for _, ops in made:
        for op in OPS:
            ops[op](rng.choice(paths))
    lat: dict[str, list[float]] = {op: [] for op in OPS}
    errors = dict.fromkeys(OPS, 0)
    samples: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(n + 1)

    def run(t: int) -> None:
        ops = made[t][1]
        mine: dict[str, list[float]] = {op: [] for op in OPS}
        go.wait()
        end, i = time.monotonic() + float(seconds), t
        while time.monotonic() < end:
            op, path = OPS[i % len(OPS)], rng.choice(paths)
            i += 1
            t0 = time.perf_counter()
            try:
                ops[op](path)
            except Exception as exc:  # counted and shown: errors under load are findings
                with lock:
                    errors[op] += 1
                    if len(samples) < 5:
                        samples.append(f"{op} {path}: {type(exc).__name__}: {exc}"[:500])
                continue
            mine[op].append(time.perf_counter() - t0)
        with lock:
            for op in OPS:
                lat[op].extend(mine[op])

    workers = [threading.Thread(target=run, args=(t,)) for t in range(n)]
    for w in workers:
        w.start()
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0 = time.process_time()
    go.wait()
    for w in workers:
        w.join()
    cpu = time.process_time() - cpu0
    for close, _ in made:
        with contextlib.suppress(Exception):
            close()
    print(json.dumps({"lat": lat, "errors": errors, "samples": samples, "cpu": cpu}), flush=True)
    return 0


def run_readers(
    svc: Services,
    kind: str,
    target: str,
    key: str,
    env: dict[str, str],
    args: argparse.Namespace,
    base: Path,
) -> dict:
    procs = []
    homes = scratch(f"readers-{kind}", base)
    try:
        for p in range(args.reader_procs):
            argv = [harness.venv_python(), str(Path(__file__).resolve()), "_reader", kind, target]
            argv += [key, str(homes / f"p{p}"), str(args.reader_threads)]
            argv += [str(args.read_seconds), str(p)]
            procs.append(
                spawn(
                    argv, env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                proc.wait(30)
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise BenchError(f"{kind} reader failed to start: {err[-2000:]}")
        meter = Meter(svc)
        meter.start()
        t0 = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        lat: dict[str, list[float]] = {op: [] for op in OPS}
        errors = dict.fromkeys(OPS, 0)
        samples: list[str] = []
        reader_cpu = 0.0
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=args.read_seconds + 120)
            if proc.returncode != 0:
                raise BenchError(f"{kind} reader failed: {stderr.decode(errors='replace')[-2000:]}")
            data = json.loads(stdout)
            for op in OPS:
                lat[op].extend(data["lat"][op])
                errors[op] += data["errors"][op]
            samples.extend(data["samples"])
            reader_cpu += data["cpu"]
        seconds = time.perf_counter() - t0
        out = {"seconds": seconds, "errors": errors, "samples": samples[:10], **meter.stop()}
        out["reader_cpu"] = reader_cpu
        out["ops"] = {op: summarise(lat[op], args.read_seconds) for op in OPS}
        out["all"] = summarise([x for op in OPS for x in lat[op]], args.read_seconds)
        return out
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(homes, ignore_errors=True)


def summarise(values: list[float], seconds: float) -> dict:
    """server_bench's latency summary, or empty figures when every call of an op failed."""
    if values:
        return summarise_latencies(values, seconds)
    return {"calls": 0, "calls_per_s": 0.0, "p50_ms": None, "p99_ms": None, "max_ms": None}


def measure_readers(svc: Services, args: argparse.Namespace, base: Path) -> dict:
    work = scratch("mix", base)
    try:
        make_wide_tree(work / "tree")
        key = svc.new_user()
        run_quiet(
            [*grid_command(), "datastore", "create", str(work / "tree"), "--name", MIX],
            svc.client_env(work / "creator", key),
        )
        s3_env = {**os.environ, **svc.aws_env}
        run_quiet(aws_sync(svc, work / "tree", MIX), s3_env)
        total = args.reader_procs * args.reader_threads
        label = f"{args.reader_procs} processes x {args.reader_threads} threads"
        print(f"\n== {total} readers ({label}), {args.read_seconds:g} s each", flush=True)
        out = {}
        for kind, target, bucket_or_key, env in (
            ("grid", svc.url, key, svc.client_env(work / "unused", key)),
            ("s3", svc.s3_url, PEER_BUCKET, s3_env),
        ):
            out[kind] = res = run_readers(svc, kind, target, bucket_or_key, env, args, base)
            a = res["all"]
            print(
                f"  {kind}: {a['calls']:,} requests ({a['calls_per_s']:,.0f}/s), "
                f"p50 {a['p50_ms'] or 0:.1f} ms, p99 {a['p99_ms'] or 0:.1f} ms, "
                f"errors {sum(res['errors'].values())}",
                flush=True,
            )
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- part 3: worker import


def measure_import(svc: Services, src: Path, base: Path, made_archive: list[Path]) -> list[dict]:
    existed = (src.parent / f"{src.name}.tar.gz").exists()
    archive = make_archive(src)
    if not existed:
        made_archive.append(archive)
    port = free_port()
    server = spawn(
        [sys.executable, str(SERVE), str(archive.parent), str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/{archive.name}"
    files, size = tree_size(src)
    print(f"\n== import of {url} ({archive.stat().st_size / MB:,.0f} MB .tar.gz)", flush=True)
    meter = Meter(svc)
    work = scratch("import", base)
    try:
        wait_http(url, server)
        key = svc.new_user()
        grid_argv = [*grid_command(), "datastore", "create", url, "--name", "imp"]
        plan = [
            ("curl > /dev/null (limit)", "limit", f"curl -sf {url} > /dev/null", None),
            ("curl -s URL | tar xz -C DIR", "peer", "", None),
            ("grid create URL (server's worker)", "ours", None, grid_argv),
        ]
        rows = []
        for label, kind, shell, argv in plan:
            warm_file(archive)
            os.sync()
            if argv is not None:
                drain_jobs(svc, meter)
                res = run_together([(argv, svc.client_env(work / "home", key))], meter, work)
                res.update(drain_jobs(svc, meter))
                for failure in res["failures"]:
                    print(f"    FAILED {failure}", flush=True)
            else:
                meter.start()
                res = shell_job(
                    work, lambda out, s=shell: s or f"curl -sf {url} | tar xz -C {out}"
                )()
                res.update(meter.stop(), failures=[])
            row = {"label": label, "kind": kind, "files": files, "bytes": size, **res}
            row["files_per_s"] = files / res["seconds"]
            row["mb_per_s"] = size / MB / res["seconds"]
            rows.append(row)
            print(f"  {label}: {fmt_create(row)}", flush=True)
        return rows
    finally:
        stop_process(server)
        shutil.rmtree(work, ignore_errors=True)


def warm_file(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


# ---------------------------------------------------------------- output


def create_table(rows: list[dict], title: str) -> str:
    grid_n = next((r for r in rows if r["kind"] == "ours" and r["clients"] > 1), None)
    aws_n = next((r for r in rows if r["kind"] == "peer" and r.get("clients", 1) > 1), None)
    head = ["job", "files", "MB", "seconds", "files/s", "MB/s", "each client s (min-max)"]
    head += ["client CPU s", "server CPU s", "SeaweedFS CPU s", "PostgreSQL CPU s"]
    head += ["others' CPU s", "busy %", "failed", "then jobs s (server, S3 CPU s)"]
    body = []
    for r in rows:
        each = r.get("each_seconds") or [r["seconds"]]
        body.append(
            [
                r["label"],
                f"{r['files']:,}",
                f"{r['bytes'] / MB:,.0f}",
                f"{r['seconds']:.2f}",
                f"{r['files_per_s']:,.0f}",
                f"{r['mb_per_s']:,.1f}",
                f"{min(each):.1f}-{max(each):.1f}",
                f"{r.get('client_cpu', 0):.1f}" if "client_cpu" in r else None,
                f"{r['server_cpu']:.1f}",
                f"{r['s3_cpu']:.1f}",
                f"{r['pg_cpu']:.1f}",
                f"{others_cpu(r, 'client_cpu'):.1f}",
                f"{r['busy_pct']:.0f}",
                str(len(r["failures"])),
                jobs_cell(r),
            ]
        )
    text = f"{title}\n{harness.table(head, body)}"
    if grid_n and aws_n:
        text += f"\n  {grid_n['label']}: {aws_n['seconds'] / grid_n['seconds']:.1f} x aws s3 sync"
        single = next(r for r in rows if r["kind"] == "ours" and r["clients"] == 1)
        text += (
            f"; aggregate {grid_n['files_per_s'] / single['files_per_s']:.2f} x one client's "
            "files/s"
        )
    return text


def jobs_cell(row: dict) -> str | None:
    """How long the server's workers went on after the client returned (verify jobs)."""
    if "jobs_seconds" not in row:
        return None
    return f"{row['jobs_seconds']:.1f} ({row['jobs_server_cpu']:.1f}, {row['jobs_s3_cpu']:.1f})"


def reader_table(res: dict, title: str) -> str:
    head = ["reader", "op", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"]
    body = []
    for kind, name in (("grid", "grid RemoteClient"), ("s3", "boto3 -> SeaweedFS (peer)")):
        data = res[kind]
        for op in (*OPS, "all"):
            s = data["ops"][op] if op != "all" else data["all"]
            errs = sum(data["errors"].values()) if op == "all" else data["errors"][op]
            body.append(
                [
                    name,
                    op,
                    f"{s['calls']:,}",
                    f"{s['calls_per_s']:,.0f}",
                    None if s["p50_ms"] is None else f"{s['p50_ms']:.1f}",
                    None if s["p99_ms"] is None else f"{s['p99_ms']:.1f}",
                    None if s["max_ms"] is None else f"{s['max_ms']:.1f}",
                    str(errs),
                ]
            )
    text = f"{title}\n{harness.table(head, body)}"
    for kind in ("grid", "s3"):
        d = res[kind]
        text += (
            f"\n  {kind}: during {d['seconds']:.1f} s, CPU seconds: readers {d['reader_cpu']:.1f}, "
            f"grid server {d['server_cpu']:.1f}, SeaweedFS {d['s3_cpu']:.1f}, PostgreSQL "
            f"{d['pg_cpu']:.1f}, other processes {others_cpu(d, 'reader_cpu'):.1f}; machine "
            f"busy {d['busy_pct']:.0f} %"
        )
        for sample in d["samples"]:
            text += f"\n  {kind} error: {sample}"
    p99 = res["grid"]["ops"]["ls"]["p99_ms"]
    met = p99 is not None and p99 <= TARGET_LS_P99_MS
    text += (
        f"\n  target: grid ls p99 <= {TARGET_LS_P99_MS:g} ms under this load: "
        f"{'met' if met else 'MISSED'} ({'-' if p99 is None else f'{p99:.1f}'} ms)"
    )
    return text


def import_table(rows: list[dict], title: str) -> str:
    head = ["job", "seconds", "files/s", "MB/s", "server CPU s", "SeaweedFS CPU s"]
    head += ["PostgreSQL CPU s", "machine CPU s", "busy %", "failed"]
    head += ["then jobs s (server, S3 CPU s)"]
    body = [
        [
            r["label"],
            f"{r['seconds']:.2f}",
            f"{r['files_per_s']:,.0f}",
            f"{r['mb_per_s']:,.1f}",
            f"{r['server_cpu']:.1f}",
            f"{r['s3_cpu']:.1f}",
            f"{r['pg_cpu']:.1f}",
            f"{r['machine_cpu']:.1f}",
            f"{r['busy_pct']:.0f}",
            str(len(r["failures"])),
            jobs_cell(r),
        ]
        for r in rows
    ]
    return f"{title}\n{harness.table(head, body)}"


def server_errors(svc: Services) -> list[str]:
    """The grid server's log lines that look like errors (and a few lines around each)."""
    lines = log_tail(svc.base / "server.log", 10_000_000).splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        if any(m in line for m in ERROR_MARKS):
            out.extend(lines[max(0, i - 1) : i + 3])
    return out


# ---------------------------------------------------------------- orchestration


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=8000, help="files in `small` (default 8,000)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent creates (default 8)")
    ap.add_argument("--reader-procs", type=int, default=8, help="reader processes (default 8)")
    ap.add_argument("--reader-threads", type=int, default=4, help="threads each (default 4)")
    ap.add_argument("--read-seconds", type=float, default=20.0, help="per reader kind (20)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: create,read,import")
    ap.add_argument(
        "--root", type=Path, help="where `small` lives (default /tmp/load-bench-data-FILES)"
    )
    ap.add_argument("--tmp", type=Path, default=Path("/tmp"), help="services and homes")
    ap.add_argument("--json-out", type=Path, help="also write every figure as JSON")
    args = ap.parse_args(argv)
    if min(args.files, args.clients, args.reader_procs, args.reader_threads) < 1:
        ap.error("sizes must be at least 1")
    if args.root is None:
        args.root = Path(f"/tmp/load-bench-data-{args.files}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    for tool in ("aws", "curl", "tar"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not on PATH", file=sys.stderr)
            return 2
    for var in [v for v in os.environ if v.startswith("GRID_")]:
        del os.environ[var]  # no login, settings at their defaults (GRID_FSYNC unset)
    args.tmp.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="grid-load-bench-", dir=args.tmp))
    os.environ["GRID_CONFIG_DIR"] = str(base / "no-login")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    svc = Services(base)
    report: dict = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "load_at_start": os.getloadavg(),
            "aws": tool_version(["aws", "--version"]),
            "weed": tool_version([str(server_bench.REPO_ROOT / ".venv/bin/weed"), "version"]),
        },
    }
    if args.json_out:
        args.json_out.unlink(missing_ok=True)
    generated: Path | None = None
    archives: list[Path] = []
    started = time.monotonic()
    try:
        src, made = harness.ensure_small(args.root, args.files)
        generated = src if made else None
        slices = make_slices(src, args.clients, scratch("slices", base))
        print("starting PostgreSQL, SeaweedFS and grid server on 127.0.0.1 ...", flush=True)
        svc.start_postgres()
        svc.start_seaweedfs()
        start_server_allowing_private_urls(svc)
        print(f"  grid server {svc.url}, s3://{GRID_BUCKET}/grid at {svc.s3_url}", flush=True)
        if "create" not in skip:
            files, size = tree_size(src)
            print(f"\n== creates: {files:,} files, {size / MB:,.0f} MB in {args.clients} slices")
            report["creates"] = measure_creates(svc, slices, base)
        if "read" not in skip:
            report["readers"] = measure_readers(svc, args, base)
        if "import" not in skip:
            report["import"] = measure_import(svc, src, base, archives)
        report["server_errors"] = server_errors(svc)
        if args.json_out:
            args.json_out.write_text(json.dumps(report, indent=1))
    except (BenchError, harness.BenchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            print("grid server log (tail):\n" + log_tail(base / "server.log"), file=sys.stderr)
        return 1
    finally:
        kill_live()
        svc.close()
        shutil.rmtree(base, ignore_errors=True)
        for archive in archives:
            archive.unlink(missing_ok=True)
        if generated is not None:
            harness.remove_dataset(generated)
            print(f"deleted the generated dataset {generated}", flush=True)

    m = report["machine"]
    load = " / ".join(f"{x:.1f}" for x in m["load_at_start"])
    print(f"\n{m['cpus']} CPUs, load average at the start {load}; {m['aws']}; {m['weed']}")
    print(f"wall time of the run: {time.monotonic() - started:.0f} s")
    if "creates" in report:
        r = report["creates"]
        title = (
            f"\n{args.clients} clients creating at once: `small` ({args.files:,} files) in "
            f"{args.clients} disjoint slices, page cache warm"
        )
        print(create_table(r, title))
    if "readers" in report:
        total = args.reader_procs * args.reader_threads
        title = (
            f"\n{total} concurrent readers ({args.reader_procs} processes x "
            f"{args.reader_threads} threads), {args.read_seconds:g} s, mix of ls (1,000 "
            "entries) / stat / cat (72-88 bytes) in turn"
        )
        print(reader_table(report["readers"], title))
    if "import" in report:
        print(import_table(report["import"], "\nimport of `small` as a .tar.gz over loopback"))
    errors = report.get("server_errors") or []
    print(f"\ngrid server log: {len(errors)} lines about errors")
    for line in errors[:60]:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_reader":
        sys.exit(reader(sys.argv[2:]))
    sys.exit(main())
