"""Run a mount in the foreground, or fork it into the background and return once it is ready."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys

import pyfuse3
import trio

from grid.client import Client
from grid.errors import ConflictError, UsageError
from grid.mount.operations import GridOperations

FSNAME_PREFIX = "grid:"


def default_mountpoint(name: str, version: int) -> str:
    """/datastores/<name>/<version> for root, ~/datastores/<name>/<version> otherwise."""
    root = "/datastores" if os.geteuid() == 0 else os.path.expanduser("~/datastores")
    return os.path.join(root, name, str(version))


def mounted() -> dict[str, str]:
    """Mountpoint -> fsname of every grid mount on this machine (from /proc/mounts)."""
    out = {}
    with open("/proc/mounts") as f:
        for line in f:
            fsname, mountpoint, fstype = line.split()[:3]
            if fstype == "fuse.grid" or fsname.startswith(FSNAME_PREFIX):
                out[mountpoint.replace("\\040", " ")] = fsname
    return out


def unmount(mountpoint: str) -> None:
    """Unmount a grid mount, also one whose process died ("transport endpoint not connected")."""
    mountpoint = os.path.abspath(mountpoint)
    if mountpoint not in mounted():
        raise UsageError(f"{mountpoint} is not a grid mount", rule="unmount a grid mount")
    r = subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True, text=True)
    if r.returncode != 0:
        raise ConflictError(f"cannot unmount {mountpoint}: {r.stderr.strip()}")


def _serve(client: Client, name: str, version: int, mountpoint: str, ready_fd: int | None) -> None:
    snap = client.snapshot(name, version)
    options = set(pyfuse3.default_options)
    options |= {f"fsname={FSNAME_PREFIX}{name}:{version}", "subtype=grid", "ro"}
    if os.geteuid() == 0:
        options.add("allow_other")
    pyfuse3.init(GridOperations(snap), mountpoint, options)

    async def main() -> None:
        token = trio.lowlevel.current_trio_token()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: token.run_sync_soon(pyfuse3.terminate))
        if ready_fd is not None:
            os.write(ready_fd, b"ready")
            os.close(ready_fd)
        await pyfuse3.main()

    try:
        trio.run(main)
    finally:
        pyfuse3.close(unmount=True)
        snap.close()


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
) -> None:
    """Mount ``name:version`` at ``mountpoint``; in the background unless ``foreground``.

    ``cache_size`` bounds the on-disk blob cache (None: the client's default).

    Returns once the mount answers (background) or when it is unmounted (foreground).
    """
    _check_mountpoint(mountpoint)
    if foreground:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        with Client(home, cache_size=cache_size) as client:
            _serve(client, name, version, mountpoint, None)
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the mount process: detach, log to a file, serve
        os.close(read_end)
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
            with Client(home, cache_size=cache_size) as client:
                _serve(client, name, version, mountpoint, write_end)
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
