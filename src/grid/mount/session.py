"""A FUSE session without libfuse: ``fusermount3`` mounts and hands over ``/dev/fuse``; threads
read requests from it and write replies, with no event loop in between.

Why not pyfuse3: it schedules every request as a trio task (two thirds of a small-file read's
cost in the profiles of issue 4) and hides the inode from ``read``, so a filesystem cannot
decline OPEN. Declining it (ENOSYS) tells the kernel to stop sending OPEN and RELEASE for
files and OPENDIR/RELEASEDIR for folders and to keep their pages and listings cached: a
small file costs one request (READ) instead of three, and a file read again costs none.

Several threads (and processes, forked after INIT) read the same device: the kernel hands
each request to one of them. Blocking reads and writes of the device, and the reads of the
store behind the filesystem, release the GIL.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Protocol

from grid.mount import protocol as p

log = logging.getLogger("grid.mount")

# The kernel refuses to hand a request to a buffer under max_write + headers (EINVAL).
_BUFFER = p.MAX_WRITE + (64 << 10)
READAHEAD_KIB = 1024


class FuseError(Exception):
    """Answer the request with this errno."""

    def __init__(self, errno_: int) -> None:
        super().__init__(os.strerror(errno_))
        self.errno = errno_


class Filesystem(Protocol):
    """What a session asks of a read-only filesystem; each method raises FuseError."""

    def lookup(self, parent: int, name: bytes) -> bytes: ...
    def getattr(self, ino: int) -> bytes: ...
    def readlink(self, ino: int) -> bytes: ...
    def read(self, ino: int, offset: int, size: int) -> bytes: ...
    def readdir(self, ino: int, offset: int, size: int, plus: bool) -> bytes: ...
    def statfs(self) -> bytes: ...
    def forget(self, inos: list[int]) -> None: ...


def mount(mountpoint: str, options: list[str]) -> int:
    """Mount a FUSE filesystem at ``mountpoint`` through ``fusermount3`` (setuid: works for
    any user) and return the ``/dev/fuse`` descriptor it hands back.

    Raises:
        OSError: fusermount3 is missing or refused (its message).
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        env = {**os.environ, "_FUSE_COMMFD": str(theirs.fileno())}
        try:
            proc = subprocess.Popen(
                ["fusermount3", "-o", ",".join(options), "--", mountpoint],
                env=env,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise OSError("fusermount3 is missing: install the fuse3 package") from exc
        theirs.close()
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        _, err = proc.communicate()
    if not fds:
        raise OSError(err.decode(errors="replace").strip() or "fusermount3 failed")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


def widen_readahead(mountpoint: str, kib: int = READAHEAD_KIB) -> bool:
    """Let the kernel read ahead ``kib`` KiB of a file through this mount (its default is
    128): a sequential reader then costs one READ request per MiB instead of eight, and a
    small file one request. Needs root (the setting is in /sys); returns whether it took."""
    device = None
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and unescape_mount_field(fields[4]) == mountpoint:
                device = fields[2].decode()  # the mount's MAJOR:MINOR (its own bdi)
    if device is None:
        return False
    try:
        with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as f:
            f.write(str(kib))
    except OSError:
        return False
    return True


_OCTAL = re.compile(rb"\\([0-7]{3})")


def unescape_mount_field(field: bytes) -> str:
    """A field of /proc/mounts or /proc/self/mountinfo as the path it names: the kernel
    writes space, tab, newline and backslash as octal escapes (``\\040``, ``\\011``,
    ``\\012``, ``\\134``); other bytes as they are (not UTF-8 ones too: decoded as the os
    module does)."""
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), field))


def unmount(mountpoint: str) -> None:
    """Detach the mount (lazily: open files keep working until closed); readers of the
    device then get ENODEV and the session ends."""
    subprocess.run(["fusermount3", "-u", "-z", "--", mountpoint], capture_output=True)


class Session:
    """Serves one mounted filesystem from the descriptor ``fd``."""

    def __init__(self, fd: int, fs: Filesystem) -> None:
        self.fd = fd
        self.fs = fs
        self.ended = threading.Event()
        self._threads: list[threading.Thread] = []
        self._handlers: dict[int, Callable[[int, memoryview], bytes | None]] = {
            p.LOOKUP: lambda ino, arg: fs.lookup(ino, bytes(arg).split(b"\0", 1)[0]),
            p.GETATTR: lambda ino, arg: fs.getattr(ino),
            p.READLINK: lambda ino, arg: fs.readlink(ino),
            p.READ: self._read,
            p.READDIR: lambda ino, arg: self._readdir(ino, arg, False),
            p.READDIRPLUS: lambda ino, arg: self._readdir(ino, arg, True),
            p.STATFS: lambda ino, arg: fs.statfs(),
            p.FORGET: lambda ino, arg: fs.forget([ino]),
            p.BATCH_FORGET: self._batch_forget,
            p.INIT: self._init,
            p.DESTROY: self._destroy,
            p.INTERRUPT: lambda ino, arg: None,  # requests are short: let them finish
        }

    def _init(self, ino: int, arg: memoryview) -> bytes:
        return p.init_reply(arg)

    def _destroy(self, ino: int, arg: memoryview) -> bytes:
        self.ended.set()
        return b""

    def _read(self, ino: int, arg: memoryview) -> bytes:
        _fh, offset, size = p.READ_IN.unpack_from(arg)
        return self.fs.read(ino, offset, size)

    def _readdir(self, ino: int, arg: memoryview, plus: bool) -> bytes:
        _fh, offset, size = p.READ_IN.unpack_from(arg)
        return self.fs.readdir(ino, offset, size, plus)

    def _batch_forget(self, ino: int, arg: memoryview) -> None:
        count, _ = p.BATCH_FORGET_IN.unpack_from(arg)
        start = p.BATCH_FORGET_IN.size
        self.fs.forget(
            [p.FORGET_ONE.unpack_from(arg, start + i * p.FORGET_ONE.size)[0] for i in range(count)]
        )

    def answer_init(self) -> None:
        """Answer the kernel's first request, INIT (before forking workers, which then serve
        an initialised session).

        Raises:
            OSError: the first request is not INIT, or the kernel's protocol is not 7.x.
        """
        buffer = bytearray(_BUFFER)
        n = os.readv(self.fd, [buffer])
        _length, opcode, unique = p.IN_HEADER.unpack_from(buffer)[:3]
        if opcode != p.INIT:
            raise OSError(f"FUSE session began with request {opcode}, not INIT")
        self._reply(unique, 0, self._init(0, memoryview(buffer)[p.IN_HEADER.size : n]))

    def serve_forever(self) -> None:
        """Answer requests until the filesystem is unmounted (run it in several threads)."""
        buffer = bytearray(_BUFFER)
        view = memoryview(buffer)
        header = p.IN_HEADER
        handlers, fd = self._handlers, self.fd
        while not self.ended.is_set():
            try:
                n = os.readv(fd, [buffer])
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue  # ENOENT: the request was interrupted before we read it
                if exc.errno == errno.ENODEV:  # unmounted
                    self.ended.set()
                    return
                raise
            if n < header.size:  # end of file: the device went away
                self.ended.set()
                return
            length, opcode, unique, ino = header.unpack_from(buffer)[:4]
            handler = handlers.get(opcode)
            try:
                if handler is None:
                    raise FuseError(errno.ENOSYS)  # OPEN, OPENDIR, xattrs, writes...
                data = handler(ino, view[header.size : min(length, n)])
            except FuseError as exc:
                self._reply(unique, -exc.errno)
                continue
            except Exception:
                log.exception("FUSE request %d failed", opcode)
                self._reply(unique, -errno.EIO)
                continue
            if opcode not in p.NO_REPLY:
                self._reply(unique, 0, data or b"")

    def _reply(self, unique: int, error: int, body: bytes = b"") -> None:
        head = p.OUT_HEADER.pack(p.OUT_HEADER.size + len(body), error, unique)
        try:
            os.writev(self.fd, [head, body] if body else [head])
        except OSError as exc:
            # ENOENT: the kernel gave up on the request (interrupted); ENODEV: unmounted.
            if exc.errno in (errno.ENOENT, errno.ENODEV):
                return
            if not body:
                raise
            # A reply the kernel refused (a bug of ours): answer EIO, so nobody waits forever.
            log.error("FUSE reply to request %d refused: %s", unique, exc)
            self._reply(unique, -errno.EIO)

    def serve(self, threads: int) -> None:
        """Answer requests in ``threads`` threads (this one included) until unmounted, or
        until this thread is interrupted (a signal handler's exception ends it; the others
        end once the filesystem is unmounted: see ``join``)."""
        for i in range(threads - 1):
            worker = threading.Thread(target=self.serve_forever, name=f"grid-fuse-{i}", daemon=True)
            self._threads.append(worker)
            worker.start()
        try:
            self.serve_forever()
        finally:
            self.ended.set()

    def join(self, timeout: float = 2.0) -> None:
        """Wait up to ``timeout`` seconds in all for the other threads to end (call it after
        unmounting: their reads then fail with ENODEV)."""
        deadline = time.monotonic() + timeout
        for worker in self._threads:
            worker.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
