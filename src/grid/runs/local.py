"""The local executor: a run on this machine, supervised by the process that started it.

The supervisor records the run, forks the run's first process (``grid.runs.init``; as root
inside namespaces of its own, through a small parent that stays outside them), renews the
run's lease while it lives, shows its log, passes Ctrl-C and ``grid run stop`` on, and records
how it ended. Every process of the run dies with its parent, so nothing of it outlives the
supervisor even under kill -9.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable
from typing import BinaryIO

from grid.client import DatastoreClient, RunPort
from grid.errors import ConflictError
from grid.records import RunInfo
from grid.runs import init, namespace
from grid.runs.init import InitPlan

POLL = 0.02


def fork_run(plan: InitPlan, report_w: int) -> int:
    """Fork the run; return the pid of its outside process (the one to signal and wait)."""
    pid = os.fork()
    if pid != 0:
        return pid
    code = 1
    try:
        os.setpgid(0, 0)  # Ctrl-C reaches the supervisor alone, which passes it on once
        namespace.die_with_parent(signal.SIGKILL)
        if not plan.isolated:
            init.main(plan, report_w)
        namespace.unshare_mount_and_pid()
        first = os.fork()
        if first == 0:
            namespace.die_with_parent(signal.SIGKILL)
            init.main(plan, report_w)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if plan.passes_signals:
                signal.signal(sig, lambda s, _f: os.kill(first, s))
            else:
                signal.signal(sig, signal.SIG_IGN)
        code = init.exit_code(os.waitpid(first, 0)[1])
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(report_w, f"error {exc}\n".encode())
    os._exit(code)


class Reports:
    """What a run's first process tells on its pipe: ``started PID`` once the script runs,
    ``error TEXT`` if it could not start."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.script_pid = 0
        self.error = ""
        self.closed = False  # every writer is gone
        self._pending = b""

    def read(self, timeout: float) -> list[tuple[str, str]]:
        """The reports that arrived within ``timeout`` seconds, as (word, rest)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        chunk = os.read(self.fd, 4096) if ready else b""
        self.closed = bool(ready) and not chunk
        self._pending += chunk
        out = []
        while b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
            word, _, rest = line.decode(errors="replace").partition(" ")
            if word == "started":
                self.script_pid = int(rest)
            elif word == "error":
                self.error = rest
            out.append((word, rest))
        return out


class Supervisor:
    """Runs ``plan`` as run ``run`` and follows it to its end, recording it through a client
    that ``connect`` opens once the run is forked (no database connection may cross a fork:
    SQLite loses the writes of a child that inherits one)."""

    def __init__(
        self,
        connect: Callable[[], DatastoreClient],
        run: RunInfo,
        plan: InitPlan,
        lease_seconds: float,
    ) -> None:
        self._connect = connect
        self.client: DatastoreClient | None = None
        self.run = run
        self.plan = plan
        self.lease_seconds = lease_seconds
        self.outside = 0
        self.stops = 0
        self.reports: Reports | None = None

    def start(self) -> None:
        """Fork the run and wait until its script started (or it failed to).

        Raises:
            ConflictError: a datastore could not be mounted (the run is recorded failed).
        """
        report_r, report_w = os.pipe()
        self.outside = fork_run(self.plan, report_w)
        os.close(report_w)
        self.client = self._connect()
        self.reports = reports = Reports(report_r)
        while not reports.script_pid and not reports.error:
            if not reports.read(timeout=1.0) and self._exited() is not None:
                reports.error = reports.error or "the run's first process exited"
        if self.error:
            self._finish(1)
            raise ConflictError(f"{self.run.kind} {self.run.id} could not start: {self.error}")
        self.run = self._runs.update(self.run.id, self.lease_seconds, status="running")

    @property
    def _runs(self) -> RunPort:
        assert self.client is not None, "start() first"
        return self.client.runs

    @property
    def error(self) -> str:
        """Why the run could not start ('' if it did)."""
        return self.reports.error if self.reports is not None else ""

    def _exited(self) -> int | None:
        pid, status = os.waitpid(self.outside, os.WNOHANG)
        return None if pid == 0 else init.exit_code(status)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the run: ``sig`` to the script first, then (asked again) kill it all."""
        self.stops += 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.outside, sig if self.stops == 1 else signal.SIGKILL)

    def follow(self, out: BinaryIO | None, on_signal: Callable[[int], None] | None = None) -> int:
        """Wait for the run to end, copying its log to ``out``; return its exit code."""
        log = None
        renew_at = time.monotonic() + self.lease_seconds / 3
        code = None
        while code is None:
            code = self._exited()
            if out is not None:
                log = log or open_log(self.plan.log_path)
                if log is not None:
                    copy_new(log, out)
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + self.lease_seconds / 3
                with contextlib.suppress(Exception):  # a busy catalog: next beat
                    self._runs.update(self.run.id, self.lease_seconds)
            if code is None:
                time.sleep(POLL)
        if out is not None and log is not None:
            copy_new(log, out)
            log.close()
        self._finish(code)
        return code

    def _finish(self, code: int) -> None:
        status = "stopped" if self.stops else ("succeeded" if code == 0 else "failed")
        if self.error:
            status = "failed"
        details = {"error": self.error} if self.error else None
        self.run = self._runs.update(self.run.id, status=status, exit_code=code, details=details)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def open_log(path: str) -> BinaryIO | None:
    """A run's log, open for following (None until the run made it)."""
    try:
        return open(path, "rb")
    except OSError:
        return None


def copy_new(log: BinaryIO | None, out: BinaryIO) -> None:
    """Copy what the run wrote to ``log`` since the last call to ``out`` (1 MiB at a time: a
    chatty script never fills this process's memory)."""
    while log is not None and (data := log.read(1 << 20)):
        out.write(data)
        out.flush()


def leave_terminal(errors_path: str) -> None:
    """In a forked supervisor: a session of its own, no terminal, its errors to
    ``errors_path`` (the run folder's ``supervisor.log``)."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    errors = os.open(errors_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for fd, to in ((0, devnull), (1, devnull), (2, errors)):
        os.dup2(to, fd)
