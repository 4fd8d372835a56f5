"""The Linux calls a run needs that Python 3.11's ``os`` lacks: a private mount and PID
namespace, mounts inside it, and dying with the parent (``prctl(PR_SET_PDEATHSIG)``).

A run's first process in its namespaces is its PID 1: when it ends, however it ends, the
kernel kills every other process of the namespace and, with the last of them gone, drops the
namespace's mounts. That is what keeps a run's datastores from outliving it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


_isolation: bool | None = None


def can_isolate() -> bool:
    """Whether runs can get namespaces of their own here: root with CAP_SYS_ADMIN (a
    container may deny it), and ``GRID_RUN_NAMESPACES`` not ``0``. Tried once, in a child."""
    global _isolation
    if _isolation is None:
        _isolation = os.geteuid() == 0 and os.environ.get("GRID_RUN_NAMESPACES", "1") != "0"
        if _isolation:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    unshare_mount_and_pid()
                except OSError:
                    code = 1
                os._exit(code)
            _isolation = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    return _isolation


def unshare_mount_and_pid() -> None:
    """Give this process a mount namespace of its own (nothing mounted in it propagates
    out), and its next child the first PID of a new PID namespace."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")
    mount("none", "/", None, MS_REC | MS_PRIVATE)


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str = "") -> None:
    """mount(2)."""
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def detach(path: str) -> bool:
    """Lazily unmount ``path`` in this mount namespace (``umount2(MNT_DETACH)``)."""
    return bool(_libc.umount2(os.fsencode(path), MNT_DETACH) == 0)


def mount_proc() -> None:
    """A /proc that shows this PID namespace's processes (``ps`` in the run sees the run)."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl")
