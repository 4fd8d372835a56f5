"""A run's own first process: it mounts the run's datastores, starts the script, answers
attach and detach requests while it runs, and unmounts when it ends.

As root it is PID 1 of the run's PID namespace, in a mount namespace of its own with a tmpfs
on /datastores: the mounts exist for this run alone, and when this process ends in any way
the kernel kills what is left of the run and drops the mounts. Without root it is a plain
child whose mount processes die with it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import time
from dataclasses import dataclass
from typing import NoReturn

from grid.mount import runner
from grid.records import Attachment
from grid.runs import namespace

STOP_GRACE = 10.0  # seconds a stopped script has to end before it is killed


@dataclass(frozen=True)
class InitPlan:
    """Everything the run's first process needs: nothing is looked up after the fork."""

    home: str
    run_dir: str
    root: str  # GRID_DATASTORES_ROOT
    uses: tuple[Attachment, ...]
    command: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    log_path: str
    control: str  # abstract unix socket name of attach/detach requests
    isolated: bool
    # False under SLURM: scancel signals every process of a job itself, so a signal passed
    # on would reach the script twice (and a Python script that handles SIGTERM would die of
    # the second one while exiting).
    passes_signals: bool = True


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the killing signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _Init:
    def __init__(self, plan: InitPlan, report_fd: int) -> None:
        self.plan = plan
        self.report_fd = report_fd
        self.mounts: dict[str, int] = {}  # mount folder -> its mount process
        self.child = 0
        self.code: int | None = None
        self.stop_at: float | None = None

    def report(self, text: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self.report_fd, text.encode() + b"\n")

    # -- mounts ----------------------------------------------------------------------------
    def prepare(self) -> None:
        if self.plan.isolated:
            for point in sorted(runner.mounted(), key=len, reverse=True):  # the deepest first
                namespace.detach(point)  # the host's grid mounts: theirs to unmount
            namespace.mount_proc()
            os.makedirs(self.plan.root, exist_ok=True)
            namespace.mount("tmpfs", self.plan.root, "tmpfs", namespace.MS_NOSUID, "mode=755")
        else:
            os.makedirs(self.plan.root, exist_ok=True)
        for use in self.plan.uses:
            self.attach(use)

    def attach(self, use: Attachment) -> None:
        name = use.datastore.replace("/", "-")
        log = os.path.join(self.plan.run_dir, f"mount-{name}-{use.version}.log")
        tie = None if self.plan.isolated else (lambda: namespace.die_with_parent(signal.SIGTERM))
        pid = runner.mount(
            self.plan.home,
            use.datastore,
            use.version,
            use.path,
            foreground=False,
            log_path=log,
            in_child=tie,
        )
        self.mounts[use.path] = pid

    def detach(self, path: str) -> None:
        if path not in self.mounts:
            raise ValueError(f"nothing of this run is mounted at {path}")
        runner.unmount(path)
        self.mounts.pop(path)
        while path.startswith(self.plan.root + "/"):  # the folders made for it, if empty now
            try:
                os.rmdir(path)
            except OSError:
                break
            path = os.path.dirname(path)

    def unmount_all(self) -> None:
        for path in list(self.mounts):
            with contextlib.suppress(Exception):
                self.detach(path)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the mount processes flush and exit
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.02)
            except ChildProcessError:
                break

    # -- the script ------------------------------------------------------------------------
    def start(self) -> None:
        log = os.open(self.plan.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, 0)
                namespace.die_with_parent(signal.SIGKILL)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.chdir(self.plan.cwd)
                os.execvpe(self.plan.command[0], list(self.plan.command), self.plan.env)
            except OSError as exc:
                os.write(2, f"grid: cannot start {self.plan.command[0]}: {exc.strerror}\n".encode())
                os._exit(127)
        os.close(log)
        self.child = pid

    def signal_script(self, sig: int) -> None:
        if self.child and self.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child, sig)
            if self.stop_at is None:
                self.stop_at = time.monotonic() + STOP_GRACE

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.code = exit_code(status)

    # -- attach and detach requests --------------------------------------------------------
    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        _pid, uid, _gid = struct.unpack(
            "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        )
        if uid not in (0, os.getuid()):
            conn.sendall(b'{"error": "not yours"}\n')
            return
        try:
            request = json.loads(conn.makefile("rb").readline())
            if request["op"] == "attach":
                use = Attachment(request["datastore"], int(request["version"]), request["path"])
                self.attach(use)
            elif request["op"] == "detach":
                self.detach(request["path"])
            answer: dict[str, object] = {"ok": True, "mounts": sorted(self.mounts)}
        except Exception as exc:  # told to the caller, who reports it
            answer = {"error": str(exc)}
        conn.sendall(json.dumps(answer).encode() + b"\n")

    def loop(self, listener: socket.socket, wake: int) -> None:
        while self.code is None:
            ready, _, _ = select.select([listener.fileno(), wake], [], [], 0.5)
            if wake in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 4096)
            if listener.fileno() in ready:
                with contextlib.suppress(OSError):
                    conn, _ = listener.accept()
                    with conn:
                        self.serve(conn)
            self.reap()
            if self.stop_at is not None and time.monotonic() > self.stop_at:
                self.signal_script(signal.SIGKILL)


def main(plan: InitPlan, report_fd: int) -> NoReturn:
    """Run the plan in this (forked) process and exit with the script's exit code."""
    init = _Init(plan, report_fd)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if plan.passes_signals:
            signal.signal(sig, lambda s, _f: init.signal_script(s))
        else:
            signal.signal(sig, signal.SIG_IGN)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    code = 1
    try:
        init.prepare()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(plan.control)
        listener.listen(4)
        init.start()
        init.report(f"started {init.child}")
        init.loop(listener, wake_r)
        code = init.code if init.code is not None else 1
    except Exception as exc:
        init.report(f"error {exc}")
        init.signal_script(signal.SIGKILL)
    finally:
        init.unmount_all()
    os._exit(code)
