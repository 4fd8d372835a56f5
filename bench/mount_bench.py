#!/usr/bin/env python3
"""Benchmark reading a version through `grid datastore mount` against local disk and peers.

What it measures, for each dataset (default: ``small`` = 50,000 files of 2-200 KiB, 2.1 GB in
100 folders; ``large`` = 8 x 256 MiB), with the reader of ``bench/read_tree.py`` (list the tree,
then open, read 1 MiB blocks, close every file with N threads; the listing is not timed):

  limit    local disk: the source folder itself (no FUSE)
  ours     ``grid datastore mount bench-<dataset>:1 MNT`` of a version made (untimed, with
           ``GRID_FSYNC=0``) by ``grid datastore create DIR --name bench-<dataset>`` in a fresh
           ``GRID_HOME``; unmounted with ``grid datastore unmount MNT``
  peers    ``rclone mount DIR MNT --read-only --vfs-cache-mode off`` (of the source folder)
           ``restic mount --repo REPO MNT`` of a fresh local repository holding one
           ``restic backup DIR`` (untimed); read under ``MNT/snapshots/latest/<DIR>``

``small`` is read with 1 and with 8 threads (files/s), ``large`` with 1 and 4 streams (MB/s;
a stream is a thread reading whole files, each a different one). Every thread count gets its
own fresh mount: "cold" is the first pass right after mounting (the mount's own caches and the
kernel's page cache of the mount are empty), "warm" a second pass over the same mount. The
files behind every mount (the source folder, GRID_HOME, the restic repository) are read once
(``tar | cat``) before each mount, so every tool starts from the page cache alike; for local
disk both passes read the page cache.

Also per mount: "1st byte s", the seconds from launching the mount command to the first byte of
one file (the dataset's first file in sorted order) read through the new mount, and "RSS MiB",
the mount process's peak resident set (VmHWM from /proc/PID/status, read right before it is
unmounted). The grid mount forks into the background; its process is found in /proc by its
command line. Then, once per run, "listing": ``os.listdir`` + ``os.lstat`` of every entry (what
``ls -l`` does) of one folder of 1,000 small files, first on a fresh mount and then again, in ms.

"vs local", "vs rclone", "vs restic" are the row's throughput divided by that tool's at the same
thread count, cold/warm (2.00x = twice as fast; below 1 = slower). Each pass runs the reader
as a fresh child process (``mount_bench.py --reader DIR --threads N``) and checks that it read
exactly the source's files and bytes. With ``--repeat N`` the tools take turns (round-robin) N
times and the tables show medians. Mounts, repositories, GRID_HOMEs and mountpoints are
temporary and removed right after use (also on Ctrl-C / SIGTERM).

Run it from the repository root (needs restic, rclone and fuse3: ``bash bench/setup.sh``; the
grid CLI is ``.venv/bin/grid`` if present, else ``python -m grid``)::

    python bench/mount_bench.py                        # small and large, every tool
    python bench/mount_bench.py --quick                # 2 folders of small, 2 large files
    python bench/mount_bench.py --datasets small --top 6   # 3,000 files of small
    python bench/mount_bench.py --datasets small --repeat 3 --json-out /tmp/mount.json
    python bench/mount_bench.py --skip-peers           # local disk and grid only

Missing datasets are generated with ``python3 ../shared/bench/make_datasets.py --root ROOT
--only NAME --jobs 2``. Numbers on shared VMs are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from create_bench import (  # noqa: E402
    MAKE_DATASETS,
    MB,
    RESTIC_PASSWORD,
    BenchError,
    grid_command,
    indent,
    run_quiet,
    scratch,
    tool_versions,
    tree_size,
    warm_cache,
)
from read_tree import read_file  # noqa: E402

# dataset -> (thread counts, unit); other datasets from make_datasets.py read like small
THREADS = {"small": (1, 8), "large": (1, 4)}
UNITS = {"large": "MB/s"}
QUICK_ENTRIES = 2  # --quick: the first 2 top-level entries (small: folders, large: files)
LS_FILES = 1000  # the listing test's folder
READY_TIMEOUT = 120.0  # seconds a mount may take to answer
STOP_TIMEOUT = 30.0  # seconds a mount process may take to exit after unmounting
REQUIRED_TOOLS = {"restic": "restic", "rclone": "rclone", "fusermount3": "fuse3"}  # binary: pkg


# ---------------------------------------------------------------- the reader (a child process)


def reader_main(argv: list[str]) -> int:
    """``--reader DIR --threads N --out FILE``: read every file under DIR, write JSON to FILE."""
    ap = argparse.ArgumentParser(prog="mount_bench.py --reader")
    ap.add_argument("--reader", required=True, help="folder to read")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    paths = [os.path.join(d, f) for d, _, files in os.walk(args.reader) for f in files]
    walk_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        total = sum(pool.map(read_file, paths))
    seconds = time.perf_counter() - start
    result = {"files": len(paths), "bytes": total, "seconds": seconds, "walk_seconds": walk_seconds}
    args.out.write_text(json.dumps(result))
    return 0


def run_child(argv: list[str], env=None, on_interrupt: str = "kill") -> dict:
    """create_bench.run_timed, but never leaves the child running behind an interrupt: on
    Ctrl-C / SIGTERM it is killed (a reader) or awaited (a mount command, which returns once
    its mount is up, so that the mount can then be taken down)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            if on_interrupt == "kill":
                proc.kill()
            try:
                proc.wait(READY_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-2000:]
            raise BenchError(f"command failed (exit {code}): {' '.join(argv)}\n{tail}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}  # ru_maxrss is KiB


def read_pass(root: Path, threads: int, base: Path, files: int, size: int) -> dict:
    """One timed pass of the reader over root as a fresh process; checks files and bytes."""
    fd, out = tempfile.mkstemp(prefix="grid-bench-read-", suffix=".json", dir=base)
    os.close(fd)
    try:
        argv = [sys.executable, __file__, "--reader", str(root), "--threads", str(threads)]
        child = run_child([*argv, "--out", out], on_interrupt="kill")
        result = json.loads(Path(out).read_text())
    finally:
        os.unlink(out)
    if (result["files"], result["bytes"]) != (files, size):
        raise BenchError(
            f"reader saw {result['files']:,} files, {result['bytes']:,} bytes under {root}; "
            f"the source has {files:,} files, {size:,} bytes"
        )
    result["reader_rss_mib"] = child["peak_rss_mib"]
    result["files_per_s"] = files / result["seconds"]
    result["mb_per_s"] = size / MB / result["seconds"]
    return result


# ---------------------------------------------------------------- mounts and processes


def mount_points() -> set[str]:
    """Every mountpoint on this machine (from /proc/mounts)."""
    with open("/proc/mounts") as f:
        return {line.split()[1].replace("\\040", " ") for line in f}


def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    return sorted(m for m in mount_points() if m == str(path) or m.startswith(prefix))


def force_unmount(mnt: Path) -> None:
    """Lazily detach mnt if something is still mounted there (a dead or stuck mount)."""
    if str(mnt) in mount_points():
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, check=False)


def remove_tree(path: Path) -> None:
    """rmtree, but never through a mount that is still there: report it instead."""
    left = mounts_under(path)
    for m in left:
        force_unmount(Path(m))
    left = mounts_under(path)
    if left:
        print(f"  WARNING: not deleting {path}: still mounted: {', '.join(left)}", flush=True)
        return
    shutil.rmtree(path, ignore_errors=True)


def wait_until(ready, what: str, proc=None, log: Path | None = None) -> None:
    """Poll ready() every 5 ms; fail if proc exits first or READY_TIMEOUT passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what}: the process exited ({proc.returncode}){log_tail(log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not ready after {READY_TIMEOUT:.0f} s{log_tail(log)}")
        time.sleep(0.005)


def log_tail(log: Path | None, chars: int = 2000) -> str:
    if log is None or not log.exists():
        return ""
    return "\n" + log.read_text(errors="replace").strip()[-chars:]


def find_pid(args: list[str]) -> int | None:
    """The process (not this one) whose command line holds every one of args, if any."""
    found = find_pids(args)
    return min(found) if found else None


def find_pids(args: list[str]) -> list[int]:
    """Every process (not this one) whose command line holds every one of args."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        words = cmdline.split("\0")
        if all(a in words for a in args):
            found.append(int(entry.name))
    return found


def proc_status(pid: int, key: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def peak_rss_mib(pid: int | None) -> float | None:
    """VmHWM (peak resident set) of a running process, in MiB."""
    value = proc_status(pid, "VmHWM") if pid else None
    return int(value.split()[0]) / 1024 if value else None  # "123456 kB"


def wait_gone(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """Wait for a process that is not our child to exit (gone or a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = proc_status(pid, "State")
        if state is None or state.startswith("Z"):
            return True
        time.sleep(0.01)
    return False


def stop_child(proc: subprocess.Popen | None, mnt: Path) -> None:
    """Wait for a mount process we started to exit after unmounting; kill it if it will not."""
    if proc is not None and proc.poll() is None:
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    force_unmount(mnt)


# ---------------------------------------------------------------- the tools
# Each tool stores a tree once (prepare, untimed), then serves it at a fresh mountpoint as often
# as asked: start(mnt) returns once the mount answers and gives the folder that holds the tree;
# stop() unmounts and waits for the mount process to exit; cleanup() deletes what prepare made.


class LocalDisk:
    """The source folder itself: the limit (no FUSE, no mount)."""

    name, kind, mounts = "local disk", "limit", False

    def prepare(self, src: Path, ref_name: str, base: Path) -> None:
        self.src = src

    def backing(self) -> list[Path]:
        return [self.src]

    def start(self, mnt: Path) -> Path:
        return self.src

    def peak_rss_mib(self) -> float | None:
        return None

    def stop(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


class GridMount:
    """``grid datastore mount`` of a version created in a fresh GRID_HOME."""

    kind, mounts = "ours", True

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers  # None: grid's default (one serving process per CPU, up to 4)
        self.name = "grid mount" if workers is None else f"grid mount --workers {workers}"
        self.home: Path | None = None
        self.mnt: Path | None = None
        self.pid: int | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "GRID_HOME": str(self.home)}

    def prepare(self, src: Path, ref_name: str, base: Path) -> None:
        self.home = scratch("grid-home", base)
        self.ref = f"{ref_name}:1"
        create = [*grid_command(), "datastore", "create", str(src), "--name", ref_name]
        run_quiet(create, {**self.env(), "GRID_FSYNC": "0"})

    def backing(self) -> list[Path]:
        return [self.home]

    def start(self, mnt: Path) -> Path:
        self.mnt = mnt
        self.pid = None
        self.pid_args: list[str] = []
        argv = [*grid_command(), "datastore", "mount", self.ref, str(mnt)]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        try:  # returns once the forked mount process answers; stdout/err go to files, not pipes
            run_child(argv, self.env(), on_interrupt="wait")
        except BenchError as exc:
            raise BenchError(f"{exc}{log_tail(self.log())}") from None
        if str(mnt) not in mount_points():
            raise BenchError(f"grid datastore mount returned but {mnt} is not mounted")
        self.pid_args = ["datastore", "mount", str(mnt)]
        self.pid = find_pid(self.pid_args)
        if self.pid is None:
            print(f"  WARNING: no process found for the grid mount at {mnt}", flush=True)
        return mnt

    def log(self) -> Path | None:
        logs = sorted((self.home / "logs").glob("mount-*.log")) if self.home else []
        return logs[-1] if logs else None

    def log_problems(self) -> list[str]:
        """Lines of the mount logs that report an error or a traceback."""
        lines = []
        for log in sorted((self.home / "logs").glob("*.log")) if self.home else []:
            for line in log.read_text(errors="replace").splitlines():
                if any(w in line for w in ("ERROR", "Error", "Traceback", "failed", "WARNING")):
                    lines.append(f"{log.name}: {line}")
        return lines

    def peak_rss_mib(self) -> float | None:
        """Summed over the mount's worker processes (pages they share are counted in each)."""
        pids = find_pids(self.pid_args) if self.pid_args else []
        values = [v for v in map(peak_rss_mib, pids) if v is not None]
        return sum(values) if values else peak_rss_mib(self.pid)

    def stop(self) -> None:
        mnt, self.mnt = self.mnt, None
        if mnt is None:
            return
        if self.pid is None:  # start() was interrupted after the mount came up
            self.pid = find_pid(["datastore", "mount", str(mnt)])
        try:
            if str(mnt) in mount_points():
                run_quiet([*grid_command(), "datastore", "unmount", str(mnt)], self.env())
        finally:
            if self.pid is not None and not wait_gone(self.pid):
                print(f"  WARNING: grid mount process {self.pid} still running", flush=True)
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGTERM)
                wait_gone(self.pid, 5)
            force_unmount(mnt)

    def cleanup(self) -> None:
        self.stop()
        if self.home is not None:
            remove_tree(self.home)


class RcloneMount:
    """``rclone mount SRC MNT --read-only --vfs-cache-mode off`` (run in the foreground)."""

    name, kind, mounts = "rclone mount", "peer", True

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.mnt: Path | None = None
        self.work: Path | None = None

    def prepare(self, src: Path, ref_name: str, base: Path) -> None:
        self.src = src
        self.work = scratch("rclone", base)

    def backing(self) -> list[Path]:
        return [self.src]

    def start(self, mnt: Path) -> Path:
        self.mnt = mnt
        log = self.work / "mount.log"
        env = {**os.environ, "RCLONE_CONFIG": str(self.work / "rclone.conf")}
        argv = ["rclone", "mount", str(self.src), str(mnt), "--read-only"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [*argv, "--vfs-cache-mode", "off"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        wait_until(lambda: str(mnt) in mount_points(), "rclone mount", self.proc, log)
        return mnt

    def peak_rss_mib(self) -> float | None:
        return peak_rss_mib(self.proc.pid if self.proc else None)

    def stop(self) -> None:
        mnt, self.mnt = self.mnt, None
        if mnt is None:
            return
        done = subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, check=False)
        if done.returncode != 0 and self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # busy: rclone unmounts itself on SIGTERM
        stop_child(self.proc, mnt)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self.work is not None:
            remove_tree(self.work)


class ResticMount:
    """``restic mount`` of a fresh local repository holding one backup of the source."""

    name, kind, mounts = "restic mount", "peer", True

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.mnt: Path | None = None
        self.work: Path | None = None

    def prepare(self, src: Path, ref_name: str, base: Path) -> None:
        self.src = src
        self.work = scratch("restic", base)
        self.repo = self.work / "repo"
        self.env = {
            **os.environ,
            "RESTIC_PASSWORD": RESTIC_PASSWORD,
            "RESTIC_CACHE_DIR": str(self.work / "cache"),
        }
        run_quiet(["restic", "init", "--repo", str(self.repo)], self.env)
        run_quiet(["restic", "backup", "--quiet", "--repo", str(self.repo), str(src)], self.env)

    def backing(self) -> list[Path]:
        return [self.repo]

    def start(self, mnt: Path) -> Path:
        self.mnt = mnt
        log = self.work / "mount.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                ["restic", "mount", "--repo", str(self.repo), str(mnt)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        latest = mnt / "snapshots" / "latest"
        wait_until(latest.exists, "restic mount", self.proc, log)
        return latest / str(self.src).lstrip("/")  # restic keeps the absolute path

    def peak_rss_mib(self) -> float | None:
        return peak_rss_mib(self.proc.pid if self.proc else None)

    def stop(self) -> None:
        mnt, self.mnt = self.mnt, None
        if mnt is None:
            return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # restic unmounts and exits on SIGINT
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, check=False)
        stop_child(self.proc, mnt)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self.work is not None:
            remove_tree(self.work)


def make_tools(skip_peers: bool) -> list:
    tools = [LocalDisk(), GridMount(), GridMount(workers=2)]
    return tools if skip_peers else [*tools, RcloneMount(), ResticMount()]


# ---------------------------------------------------------------- measurements


def sorted_files(src: Path) -> list[str]:
    """Relative paths of every regular file under src, sorted."""
    out = []
    for d, dirs, files in os.walk(src):
        dirs.sort()
        out += sorted(os.path.relpath(os.path.join(d, f), src) for f in files)
    return out


def fresh_mount(tool, base: Path, first_file: str | None):
    """Warm the tool's backing files, mount; return (mnt, root, seconds to the first byte).

    The caller must call tool.stop() and mnt.rmdir() (in a finally) even if this raises.
    """
    os.sync()
    for path in tool.backing():
        warm_cache(path)
    mnt = scratch("mnt", base)
    start = time.perf_counter()
    try:
        root = tool.start(mnt)
        first_byte = None
        if tool.mounts and first_file is not None:
            with open(root / first_file, "rb", buffering=0) as f:
                f.read(1)
            first_byte = time.perf_counter() - start
    except BaseException:
        tool.stop()
        remove_mountpoint(mnt)
        raise
    return mnt, root, first_byte


def remove_mountpoint(mnt: Path) -> None:
    force_unmount(mnt)
    try:
        mnt.rmdir()
    except OSError as exc:
        print(f"  WARNING: cannot remove mountpoint {mnt}: {exc}", flush=True)


def measure_once(tool, threads: int, base: Path, files: list[str], size: int) -> dict:
    """A fresh mount: first byte, a cold pass, a warm pass, the mount's peak RSS; unmount."""
    mnt, root, first_byte = fresh_mount(tool, base, files[0] if files else None)
    try:
        cold = read_pass(root, threads, base, len(files), size)
        warm = read_pass(root, threads, base, len(files), size)
        rss = tool.peak_rss_mib()
    finally:
        tool.stop()
        remove_mountpoint(mnt)
    return {"cold": cold, "warm": warm, "first_byte_s": first_byte, "mount_rss_mib": rss}


def measure_dataset(name: str, src: Path, args: argparse.Namespace) -> dict:
    """Prepare every tool, then round-robin (repeat x thread count x tool) fresh-mount reads."""
    files = sorted_files(src)
    size = tree_size(src)[1]
    threads_list = THREADS.get(name, THREADS["small"])
    unit = UNITS.get(name, "files/s")
    print(f"\n== {name}: {len(files):,} files, {size / MB:,.1f} MB ({src})", flush=True)
    tools = make_tools(args.skip_peers)
    runs: dict[tuple[str, int], list[dict]] = {(t.name, n): [] for n in threads_list for t in tools}
    errors: dict[str, str] = {}
    problems: list[str] = []
    try:
        for tool in tools:
            print(f"  preparing {tool.name} (untimed)", flush=True)
            try:
                tool.prepare(src, f"bench-{name}", args.tmp)
            except BenchError as exc:
                errors[tool.name] = str(exc)
                print(f"  {tool.name}: prepare FAILED\n{indent(str(exc))}", flush=True)
        os.sync()
        for rep in range(1, args.repeat + 1):
            for threads in threads_list:
                for tool in tools:
                    if tool.name in errors:
                        continue
                    label = row_label(tool.name, threads, name)
                    try:
                        result = measure_once(tool, threads, args.tmp, files, size)
                    except BenchError as exc:
                        errors[tool.name] = str(exc)
                        print(f"  [{rep}/{args.repeat}] {label}: FAILED\n{indent(str(exc))}")
                        continue
                    runs[(tool.name, threads)].append(result)
                    print(f"  [{rep}/{args.repeat}] {label}: {progress(result, unit)}", flush=True)
        for tool in tools:
            if isinstance(tool, GridMount):
                problems = tool.log_problems()
    finally:
        for tool in tools:
            tool.cleanup()
    if problems:
        print("  grid mount log reports:\n" + indent("\n".join(problems[:20])), flush=True)
    rows = [
        summarise(tool, threads, name, unit, runs[(tool.name, threads)], errors.get(tool.name))
        for threads in threads_list
        for tool in tools
    ]
    add_ratios(rows)
    return {
        "files": len(files),
        "bytes": size,
        "path": str(src),
        "unit": unit,
        "rows": rows,
        "grid_log_problems": problems,
    }


def row_label(tool: str, threads: int, dataset: str) -> str:
    word = "stream" if UNITS.get(dataset) == "MB/s" else "thread"
    return f"{tool}, {threads} {word}{'s' if threads > 1 else ''}"


def rate(result: dict, unit: str) -> float:
    return result["mb_per_s"] if unit == "MB/s" else result["files_per_s"]


def progress(result: dict, unit: str) -> str:
    text = f"cold {rate(result['cold'], unit):,.0f}, warm {rate(result['warm'], unit):,.0f} {unit}"
    if result["first_byte_s"] is not None:
        text += f", first byte {result['first_byte_s']:.2f} s"
    if result["mount_rss_mib"] is not None:
        text += f", mount RSS {result['mount_rss_mib']:,.0f} MiB"
    return text


def median_of(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(tool, threads, dataset, unit, results, error) -> dict:
    row: dict = {
        "name": row_label(tool.name, threads, dataset),
        "tool": tool.name,
        "kind": tool.kind,
        "threads": threads,
        "runs": results,
        "error": error,
    }
    if not results:
        return row
    for phase in ("cold", "warm"):
        seconds = statistics.median(r[phase]["seconds"] for r in results)
        files, size = results[0][phase]["files"], results[0][phase]["bytes"]
        row[f"{phase}_seconds"] = seconds
        row[f"{phase}_files_per_s"] = files / seconds
        row[f"{phase}_mb_per_s"] = size / MB / seconds
        row[phase] = row[f"{phase}_mb_per_s" if unit == "MB/s" else f"{phase}_files_per_s"]
    row["first_byte_s"] = median_of(results, "first_byte_s")
    row["mount_rss_mib"] = median_of(results, "mount_rss_mib")
    return row


REFERENCES = {"local": "local disk", "rclone": "rclone mount", "restic": "restic mount"}


def add_ratios(rows: list[dict]) -> None:
    """vs_<ref> = (row cold / ref cold, row warm / ref warm) at the same thread count."""
    by_key = {(r["tool"], r["threads"]): r for r in rows}
    for row in rows:
        for key, ref_tool in REFERENCES.items():
            ref = by_key.get((ref_tool, row["threads"]))
            ok = row.get("cold") and ref and ref.get("cold") and row["kind"] != "limit"
            if ok and row["tool"] != ref_tool:
                row[f"vs_{key}"] = (row["cold"] / ref["cold"], row["warm"] / ref["warm"])
            else:
                row[f"vs_{key}"] = None


# ---------------------------------------------------------------- the listing test


def make_listing_tree(base: Path) -> tuple[Path, Path]:
    """(scratch dir, source) where source/d holds LS_FILES files of 100 bytes."""
    work = scratch("listing", base)
    src = work / "ls-src"
    folder = src / "d"
    folder.mkdir(parents=True)
    for i in range(LS_FILES):
        (folder / f"f{i:05d}.txt").write_bytes(b"%099d\n" % i)
    return work, src


def time_listing(folder: Path) -> float:
    """Milliseconds to list folder and lstat every entry (what `ls -l` asks the filesystem)."""
    start = time.perf_counter()
    names = os.listdir(folder)
    for n in names:
        os.lstat(os.path.join(folder, n))
    ms = (time.perf_counter() - start) * 1000
    if len(names) != LS_FILES:
        raise BenchError(f"{folder} lists {len(names)} entries, expected {LS_FILES}")
    return ms


def measure_listing(args: argparse.Namespace) -> dict:
    work, src = make_listing_tree(args.tmp)
    print(f"\n== listing: one folder of {LS_FILES:,} files ({src / 'd'})", flush=True)
    tools = make_tools(args.skip_peers)
    runs: dict[str, list[dict]] = {t.name: [] for t in tools}
    errors: dict[str, str] = {}
    try:
        for tool in tools:
            try:
                tool.prepare(src, "bench-ls", args.tmp)
            except BenchError as exc:
                errors[tool.name] = str(exc)
                print(f"  {tool.name}: prepare FAILED\n{indent(str(exc))}", flush=True)
        for rep in range(1, args.repeat + 1):
            for tool in tools:
                if tool.name in errors:
                    continue
                try:
                    mnt, root, _ = fresh_mount(tool, args.tmp, None)
                    try:
                        os.stat(root)  # the path to the folder is resolved untimed
                        result = {"first_ms": time_listing(root / "d")}
                        result["second_ms"] = time_listing(root / "d")
                    finally:
                        tool.stop()
                        remove_mountpoint(mnt)
                except BenchError as exc:
                    errors[tool.name] = str(exc)
                    print(f"  [{rep}/{args.repeat}] {tool.name}: FAILED\n{indent(str(exc))}")
                    continue
                runs[tool.name].append(result)
                print(
                    f"  [{rep}/{args.repeat}] {tool.name}: first {result['first_ms']:.1f} ms, "
                    f"second {result['second_ms']:.1f} ms",
                    flush=True,
                )
    finally:
        for tool in tools:
            tool.cleanup()
        remove_tree(work)
    rows = []
    for tool in tools:
        row = {"name": tool.name, "kind": tool.kind, "runs": runs[tool.name]}
        row["error"] = errors.get(tool.name)
        row["first_ms"] = median_of(runs[tool.name], "first_ms")
        row["second_ms"] = median_of(runs[tool.name], "second_ms")
        rows.append(row)
    return {"entries": LS_FILES, "rows": rows}


# ---------------------------------------------------------------- datasets


def ensure_dataset(root: Path, name: str) -> Path:
    """Return root/name, generating it with make_datasets.py if it is missing."""
    path = root / name
    if not (path.is_dir() and (root / f"{name}.manifest.json").exists()):
        print(f"dataset {path} missing; generating it with {MAKE_DATASETS}", flush=True)
        if not MAKE_DATASETS.exists():
            raise BenchError(f"{path} is missing and {MAKE_DATASETS} does not exist")
        python = shutil.which("python3") or sys.executable
        cmd = [python, str(MAKE_DATASETS), "--root", str(root), "--only", name, "--jobs", "2"]
        subprocess.run(cmd, check=True)
    if not path.is_dir():
        raise BenchError(f"dataset {path} not found (known: small, large)")
    return path


def quick_subset(src: Path, name: str, base: Path, entries: int) -> tuple[Path, Path]:
    """(scratch dir, tree) with the first ENTRIES top-level entries of src, hard-linked
    (copied where linking fails) so they share the originals' page cache."""
    work = scratch(f"quick-{name}", base)
    dest = work / name
    dest.mkdir()
    for entry in sorted(os.listdir(src))[:entries]:
        path = src / entry
        if path.is_dir():
            shutil.copytree(path, dest / entry, copy_function=link_or_copy)
        else:
            link_or_copy(str(path), str(dest / entry))
    return work, dest


def link_or_copy(a: str, b: str) -> None:
    try:
        os.link(a, b)
    except OSError:
        shutil.copy2(a, b)


# ---------------------------------------------------------------- output


def ratio_cell(value) -> str:
    return f"{value[0]:.2f}x/{value[1]:.2f}x" if value else "-"


def format_table(name: str, data: dict, repeat: int, quick: bool) -> str:
    unit = data["unit"]
    columns = [  # header, width, row key, format
        ("tool", 30, "name", "{}"),
        (f"cold {unit}", 13, "cold", "{:,.0f}"),
        (f"warm {unit}", 13, "warm", "{:,.0f}"),
        ("vs local c/w", 13, "vs_local", ratio_cell),
        ("vs rclone c/w", 13, "vs_rclone", ratio_cell),
        ("vs restic c/w", 13, "vs_restic", ratio_cell),
        ("RSS MiB", 8, "mount_rss_mib", "{:,.0f}"),
        ("1st byte s", 10, "first_byte_s", "{:.2f}"),
    ]
    lines = [
        f"{name}{' (--quick subset)' if quick else ''}: {data['files']:,} files, "
        f"{data['bytes'] / MB:,.1f} MB; cold = first pass on a fresh mount, warm = second pass; "
        f"median of {repeat}"
    ]
    lines.append(
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w, _, _) in enumerate(columns))
    )
    for row in data["rows"]:
        label = f"limit: {row['name']}" if row["kind"] == "limit" else row["name"]
        cells = [label.ljust(columns[0][1])]
        for _, width, key, fmt in columns[1:]:
            value = row.get(key)
            text = fmt(value) if callable(fmt) else fmt.format(value) if value is not None else "-"
            cells.append(text.rjust(width))
        if row.get("error") and not row.get("runs"):
            cells = [label.ljust(columns[0][1]), "FAILED (see the log above)"]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def format_listing(data: dict, repeat: int) -> str:
    lines = [
        f"listing: os.listdir + os.lstat of each of {data['entries']:,} entries in one folder "
        f"(ls -l); first = on a fresh mount; median of {repeat}",
        f"{'tool':30}  {'first ms':>9}  {'second ms':>9}",
    ]
    for row in data["rows"]:
        label = f"limit: {row['name']}" if row["kind"] == "limit" else row["name"]
        if row.get("error") and not row.get("runs"):
            lines.append(f"{label:30}  FAILED (see the log above)")
            continue
        cells = [
            f"{row[k]:.1f}".rjust(9) if row.get(k) is not None else "-".rjust(9)
            for k in ("first_ms", "second_ms")
        ]
        lines.append(f"{label:30}  " + "  ".join(cells))
    return "\n".join(lines)


LEGEND = """\
vs local / rclone / restic = the row's throughput / that tool's at the same thread count,
  cold/warm (above 1.00x = faster). RSS MiB = the mount process's peak resident set (VmHWM)
  before unmounting. 1st byte s = from launching the mount command to the first byte of one
  file read through it."""


# ---------------------------------------------------------------- main


def check_tools(need_peers: bool) -> None:
    """Fail early, naming the Debian package, if a required binary is missing."""
    wanted = ["fusermount3"] + (["restic", "rclone"] if need_peers else [])
    missing = [REQUIRED_TOOLS[t] for t in wanted if shutil.which(t) is None]
    if missing:
        raise BenchError(
            f"missing tool(s): {', '.join(missing)}; install the Debian package(s) with "
            f"`apt-get install -y {' '.join(missing)}` (or run bench/setup.sh)"
        )
    if not os.path.exists("/dev/fuse"):
        raise BenchError("/dev/fuse is missing: FUSE mounts cannot run here")


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
    ap.add_argument("--skip-peers", action="store_true", help="skip rclone and restic")
    ap.add_argument("--skip-listing", action="store_true", help="skip the 1,000-entry listing")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"read only the first {QUICK_ENTRIES} top-level entries of each dataset "
        "(small: 2 folders, ~1,000 files; large: 2 files) to validate the script quickly",
    )
    ap.add_argument(
        "--top",
        type=int,
        metavar="N",
        help="read only the first N top-level entries of each dataset (small: N folders of "
        "500 files; --top 6 is 3,000 files)",
    )
    ap.add_argument(
        "--tmp",
        "--base",
        dest="tmp",
        type=Path,
        default=Path("/tmp"),
        help="where GRID_HOMEs, repositories and mountpoints are made (default /tmp)",
    )
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    args.tmp = args.tmp.resolve()
    return args


def _interrupt(signum, frame) -> None:
    signal.signal(signum, signal.SIG_IGN)  # let the clean-up finish
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--reader"]:
        return reader_main(argv)
    args = parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    try:
        check_tools(need_peers=not args.skip_peers)
        sources = {name: ensure_dataset(args.root, name).resolve() for name in names}
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # unmount and clean up on kill, as on Ctrl-C
    args.tmp.mkdir(parents=True, exist_ok=True)
    versions = tool_versions()
    versions.pop("b3sum", None)
    report: dict = {
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tools": versions,
            "grid": " ".join(grid_command()),
        },
        "repeat": args.repeat,
        "quick": args.quick,
        "top": args.top,
        "datasets": {},
    }
    for name, src in sources.items():
        work = None
        try:
            if args.quick or args.top:
                work, src = quick_subset(src, name, args.tmp, args.top or QUICK_ENTRIES)
            report["datasets"][name] = measure_dataset(name, src, args)
        finally:
            if work is not None:
                remove_tree(work)
    if not args.skip_listing:
        report["listing"] = measure_listing(args)
    print()
    for name, data in report["datasets"].items():
        print(format_table(name, data, args.repeat, args.quick or bool(args.top)) + "\n")
    if "listing" in report:
        print(format_listing(report["listing"], args.repeat) + "\n")
    print(LEGEND)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    rows = [r for d in report["datasets"].values() for r in d["rows"]]
    rows += report.get("listing", {}).get("rows", [])
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
