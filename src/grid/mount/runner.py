"""Run a mount in the foreground, or fork it into the background and return once it is ready."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from grid.client import DatastoreClient, VersionReader, connect
from grid.client.quick import QuickReader, connect_quick
from grid.errors import ConflictError, GridError, UsageError
from grid.mount import session as fuse
from grid.mount.operations import GridOperations
from grid.mount.session import Session, unescape_mount_field

FSNAME_PREFIX = "grid:"
THREADS = 4  # request threads per serving process


def default_mountpoint(name: str, version: int) -> str:
    """/datastores/<name>/<version> for root, ~/datastores/<name>/<version> otherwise."""
    root = "/datastores" if os.geteuid() == 0 else os.path.expanduser("~/datastores")
    return os.path.join(root, name, str(version))


def mounted() -> dict[str, str]:
    """Mountpoint -> fsname of every grid mount on this machine (from /proc/mounts)."""
    out = {}
    with open("/proc/mounts", "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3:
                continue
            fsname, mountpoint, fstype = (unescape_mount_field(x) for x in fields[:3])
            if fstype == "fuse.grid" or fsname.startswith(FSNAME_PREFIX):
                out[mountpoint] = fsname
    return out


def unmount(mountpoint: str) -> None:
    """Unmount a grid mount, also one whose process died ("transport endpoint not connected").

    Raises:
        UsageError: ``mountpoint`` is not a grid mount.
        ConflictError: fusermount3 failed.
    """
    mountpoint = os.path.abspath(mountpoint)
    mounts = mounted()
    if mountpoint not in mounts and os.path.realpath(mountpoint) in mounts:
        mountpoint = os.path.realpath(mountpoint)  # named through a symlink
    if mountpoint not in mounts:
        raise UsageError(f"{mountpoint} is not a grid mount", rule="unmount a grid mount")
    r = subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True, text=True)
    if r.returncode != 0:
        raise ConflictError(f"cannot unmount {mountpoint}: {r.stderr.strip()}")


def unmount_all(on_unmounted: Callable[[str], None] | None = None) -> list[str]:
    """Unmount every grid mount on this machine, trying each even when one fails; return the
    mountpoints unmounted (``on_unmounted`` is called with each as it goes).

    Raises:
        ConflictError: some could not be unmounted (all of them named, with why); the others
            were.
    """
    done, failed = [], []
    for mountpoint in sorted(mounted()):
        try:
            unmount(mountpoint)
        except GridError as exc:
            failed.append(f"{mountpoint} ({exc})")
            continue
        done.append(mountpoint)
        if on_unmounted is not None:
            on_unmounted(mountpoint)
    if failed:
        raise ConflictError(
            f"could not unmount {len(failed)} of {len(failed) + len(done)} grid mounts: "
            + "; ".join(failed)
        )
    return done


class _Stop(BaseException):
    """A signal asked the mount to end (a BaseException: no request handler may catch it)."""


def _stop(*_: object) -> None:
    raise _Stop


def _serve(
    home: str | None,
    cache_size: int | None,
    name: str,
    version: int,
    mountpoint: str,
    ready_fd: int | None,
    workers: int,
) -> None:
    """Mount and serve until unmounted or signalled: ``workers`` processes read requests from
    the same FUSE session, each in ``THREADS`` threads (the store's reads, BLAKE3 and zstd
    release the GIL; a second process uses another core for the rest)."""
    clients: list[tuple[int, DatastoreClient | QuickReader]] = []

    def open_snapshot() -> VersionReader:
        # One client per process (no SQLite across fork); the embedded installation's is
        # opened without SQLAlchemy, which would take most of the time to the first byte.
        client = connect_quick(home, cache_size) or connect(home, cache_size=cache_size)
        clients.append((os.getpid(), client))
        snap: VersionReader = client.snapshot(name, version)
        return snap

    def close_own() -> None:
        ops.close()
        for pid, client in clients:
            if pid == os.getpid():
                client.close()  # flushes this process's blob cache accounting

    ops = GridOperations(open_snapshot)
    ops.snap  # noqa: B018 - open it now, so that a bad version fails before mounting
    options = [f"fsname={FSNAME_PREFIX}{name}:{version}", "subtype=grid", "ro", "nosuid", "nodev"]
    options.append("default_permissions")
    if os.geteuid() == 0:
        options.append("allow_other")
    served = Session(fuse.mount(mountpoint, options), ops)
    children = []
    try:
        served.answer_init()  # before forking: every worker then serves an initialised session
        fuse.widen_readahead(mountpoint)  # after INIT, which sets it; as root only
        # What start-up made lives as long as the mount: no collection needs to look at it
        # again (a full one costs milliseconds, in the middle of some request).
        gc.freeze()
        for _ in range(workers - 1):
            pid = os.fork()
            if pid == 0:  # a worker: serve until the session ends, never unmount
                code = 0
                try:
                    if ready_fd is not None:
                        os.close(ready_fd)  # the waiting command reads until every copy closes
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    ops.start()
                    served.serve(THREADS)
                    close_own()
                except BaseException:
                    logging.exception("mount worker failed")
                    code = 1
                os._exit(code)
            children.append(pid)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _stop)
        ops.start()
        if ready_fd is not None:
            os.write(ready_fd, b"ready")
            os.close(ready_fd)
        with contextlib.suppress(_Stop):
            served.serve(THREADS)
    finally:
        fuse.unmount(mountpoint)
        served.join()
        served.close()
        _reap(children)
        close_own()


def _reap(children: list[int], grace: float = 5.0) -> None:
    """Wait for the workers (the unmount ends their session), killing those that linger."""
    deadline = time.monotonic() + grace
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.01)


def _check_mountpoint(mountpoint: str) -> None:
    if mountpoint in mounted():
        raise ConflictError(f"{mountpoint} is already a grid mount: `grid datastore unmount` it")
    os.makedirs(mountpoint, exist_ok=True)
    if os.listdir(mountpoint):
        raise UsageError(f"{mountpoint} is not empty", rule="MOUNTPOINT must be an empty folder")


def mount(
    home: str | None,
    name: str,
    version: int,
    mountpoint: str,
    *,
    foreground: bool,
    log_path: str,
    cache_size: int | None = None,
    workers: int | None = None,
    in_child: Callable[[], None] | None = None,
) -> int:
    """Mount ``name:version`` at ``mountpoint``; in the background unless ``foreground``.

    ``cache_size`` bounds the on-disk blob cache (None: the client's default); ``workers`` is
    the number of serving processes (default: one per two CPUs, at most 4; the readers need
    the other cores: on 2 CPUs a second worker reads first passes 20 % faster but slows
    page-cache hits by a third).

    ``in_child`` is called first thing in the background mount process (a run ties the
    mount's life to its own with it).

    Returns once the mount answers (background: the mount process's pid) or when it is
    unmounted (foreground: 0).
    """
    _check_mountpoint(mountpoint)
    workers = workers or max(1, min((os.cpu_count() or 1) // 2, 4))
    if foreground:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        _serve(home, cache_size, name, version, mountpoint, None, workers)
        return 0
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the mount process: detach, log to a file, serve
        os.close(read_end)
        if in_child is not None:
            in_child()
        os.setsid()
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        code = 0
        try:
            _serve(home, cache_size, name, version, mountpoint, write_end, workers)
        except BaseException as exc:  # reported to the waiting parent through the pipe
            with contextlib.suppress(OSError):
                os.write(write_end, f"error: {exc}".encode())
            logging.exception("mount failed")
            code = 1
        os._exit(code)
    os.close(write_end)
    message = b""
    while chunk := os.read(read_end, 4096):
        message += chunk
    os.close(read_end)
    if message != b"ready":
        os.waitpid(pid, 0)
        text = message.decode(errors="replace").removeprefix("error: ") or "it exited"
        raise ConflictError(f"mount of {name}:{version} failed: {text} (log: {log_path})")
    return pid
