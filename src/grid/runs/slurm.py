"""The SLURM executor: a run as a batch job (``sbatch``), watched from the submitting side.

The job (``grid.runs.job``) mounts the run's datastores on its compute node and unmounts them
at the end; its folder under ``GRID_HOME/runs`` carries the plan, the log and the exit code,
so GRID_HOME must be on a filesystem the nodes share. Logged in to a server, the job reads with
a run key (valid while the run lives, at most the job's time limit and an hour), never its
user's key: sbatch passes the job the submitting environment with that key in it. The watcher (the
foreground ``grid run``, or a detached copy of it) follows ``squeue``/``scontrol``, shows the
log, renews the run's lease and records how it ended; Ctrl-C and ``grid run stop`` cancel
the job (``scancel``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, BinaryIO

from grid.client import NETWORK_FS, DatastoreClient, connect, filesystem_type
from grid.errors import ConflictError, GridError, UsageError
from grid.records import RunInfo
from grid.runs import job, launch
from grid.runs.launch import Request
from grid.runs.local import copy_new, leave_terminal, open_log
from grid.settings import Settings

LIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED")
POLL = 0.5
KEY_LIMIT = 7 * 86400.0  # the longest a run key lives
KEY_MARGIN = 3600.0  # ... past the job's time limit (it may wait in the queue first)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UsageError(
            f"SLURM's {name} is not on PATH",
            rule="--executor slurm runs where sbatch, squeue, scontrol and scancel work",
        )
    return path


def _call(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool(args[0]), *args[1:]], capture_output=True, text=True, timeout=60, env=env
    )


def _seconds(limit: str | None) -> float:
    """A SLURM time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in seconds;
    a week when none is given."""
    if not limit:
        return KEY_LIMIT
    days, _, rest = limit.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        parts += [0] * (3 - len(parts))
        h, m, sec = parts
        return int(days) * 86400 + h * 3600 + m * 60 + sec
    if len(parts) == 1:
        return parts[0] * 60.0
    if len(parts) == 2:
        return parts[0] * 60.0 + parts[1]
    return parts[0] * 3600.0 + parts[1] * 60 + parts[2]


def check_shared_home(home: str, partition: str | None) -> None:
    """Refuse a GRID_HOME the job's nodes cannot see.

    Raises:
        UsageError: the partition has nodes besides this one and GRID_HOME is on a local
            filesystem.
    """
    args = ["sinfo", "-h", "-N", "-o", "%N", *(["-p", partition] if partition else [])]
    nodes = set(_call(*args).stdout.split())
    here = {socket.gethostname(), socket.gethostname().split(".")[0]}
    kind = filesystem_type(home) or "?"
    shared = NETWORK_FS | set(Settings.from_env().network_fs)
    if nodes - here and kind not in shared:
        raise UsageError(
            f"GRID_HOME {home} is on {kind}, which the SLURM nodes "
            f"({', '.join(sorted(nodes - here))}) cannot see",
            rule="put GRID_HOME on a filesystem the nodes share (NFS, Lustre, GPFS, ...)",
        )


def submit(
    client: DatastoreClient, request: Request, options: dict[str, Any], *, detach: bool
) -> int | None:
    """Submit the run; follow it to its end (its exit code) unless ``detach`` (None)."""
    settings = Settings.from_env()
    check_shared_home(settings.home, options.get("partition"))
    run, plan = launch.prepare(client, request, executor="slurm")
    env = dict(os.environ)
    server = getattr(client, "url", None)
    if server:  # logged in: the job reads with a key of its own, never its user's
        seconds = _seconds(options.get("time")) + KEY_MARGIN
        key = client.runs.job_key(run.id, min(seconds, KEY_LIMIT))
        env.update(GRID_URL=server, GRID_API_KEY=key)
        plan = dataclasses.replace(plan, env={**plan.env, "GRID_URL": server, "GRID_API_KEY": key})
    plan_path = os.path.join(plan.run_dir, "plan.json")
    job.save_plan(plan, plan_path)
    args = ["sbatch", "--parsable", f"--job-name=grid-run-{run.id}", f"--output={plan.log_path}"]
    args += ["--open-mode=append", f"--chdir={plan.cwd}"]
    for key, flag in (("partition", "--partition"), ("time", "--time"), ("mem", "--mem")):
        if options.get(key):
            args.append(f"{flag}={options[key]}")
    if options.get("gpus"):
        args.append(f"--gpus={options['gpus']}")
    if options.get("cpus"):
        args.append(f"--cpus-per-task={options['cpus']}")
    # exec: the job's own process gets scancel's SIGTERM and passes it on (a shell would die)
    command = shlex.join([sys.executable, "-m", "grid.runs.job", plan_path])
    args.append(f"--wrap=exec {command}")
    done = _call(*args, env=env)
    if done.returncode != 0:
        reason = done.stderr.strip() or done.stdout.strip()
        client.runs.update(run.id, status="failed", details={"error": f"sbatch: {reason}"})
        raise ConflictError(f"sbatch refused run {run.id}: {reason}")
    job_id = done.stdout.strip().split(";")[0]
    run = client.runs.update(run.id, settings.lease_seconds, job_id=job_id)
    print(f"grid: run {run.id} ({run.name}) submitted as SLURM job {job_id}", file=sys.stderr)
    client.close()  # no database connection crosses the fork below
    if detach:
        if os.fork() == 0:
            leave_terminal(os.path.join(plan.run_dir, "supervisor.log"))
            code = 1
            try:
                code = Watcher(run, plan.run_dir).follow(None)
            finally:
                os._exit(code)
        print(run.id)
        return None
    watcher = Watcher(run, plan.run_dir)
    previous = {
        sig: signal.signal(sig, lambda *_: watcher.cancel())
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        return watcher.follow(sys.stdout.buffer)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _job_state(job_id: str) -> tuple[str, int | None]:
    """(state, exit code) of a job, from squeue while queued or running, then scontrol."""
    queued = _call("squeue", "-h", "-j", job_id, "-o", "%T")
    state = queued.stdout.strip()
    if queued.returncode == 0 and state in LIVE_STATES:
        return state, None
    shown = _call("scontrol", "-o", "show", "job", job_id)
    fields = dict(f.split("=", 1) for f in shown.stdout.split() if "=" in f)
    code, _, sig = fields.get("ExitCode", "0:0").partition(":")
    exit_code = 128 + int(sig) if sig not in ("", "0") else int(code or 0)
    return fields.get("JobState", "UNKNOWN"), exit_code


def cancel(run: RunInfo) -> None:
    """scancel the run's job."""
    done = _call("scancel", run.job_id)
    if done.returncode != 0:
        raise ConflictError(f"scancel {run.job_id} failed: {done.stderr.strip()}")


class Watcher:
    """Follows run ``run``'s job to its end, recording it."""

    def __init__(self, run: RunInfo, run_dir: str) -> None:
        self.run = run
        self.run_dir = run_dir
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        with contextlib.suppress(GridError):
            cancel(self.run)

    def follow(self, out: BinaryIO | None) -> int:
        lease = Settings.from_env().lease_seconds
        log: BinaryIO | None = None
        renew_at = 0.0
        with connect() as client:
            runs = client.runs
            runs.update(self.run.id, lease, pid=os.getpid())
            while True:
                state, code = _job_state(self.run.job_id)
                started = os.path.exists(os.path.join(self.run_dir, job.STARTED))
                if started and self.run.status == "queued":
                    self.run = runs.update(self.run.id, lease, status="running")
                if out is not None:
                    log = log or open_log(self.run.log_path)
                    copy_new(log, out)
                if code is not None:
                    break
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + lease / 3
                    with contextlib.suppress(GridError):
                        runs.update(self.run.id, lease)
                time.sleep(POLL)
            if out is not None:
                copy_new(log or open_log(self.run.log_path), out)
            written = os.path.join(self.run_dir, job.EXIT_CODE)
            deadline = time.monotonic() + 15  # SLURM says CANCELLED before the job has ended
            while started and not os.path.exists(written) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(OSError, ValueError), open(written) as f:
                code = int(f.read().strip())
            stopped = self.cancelled or state == "CANCELLED"
            status = "stopped" if stopped else ("succeeded" if code == 0 else "failed")
            details = None if state in ("COMPLETED", "FAILED") else {"slurm_state": state}
            runs.update(self.run.id, status=status, exit_code=code, details=details)
        return code
