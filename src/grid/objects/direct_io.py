"""Writing a file with O_DIRECT: through a page-aligned buffer per thread, in aligned
writes, the last bytes short of a block with O_DIRECT turned off. The bytes go from the buffer
to the disk without a copy into the page cache, which on the project's VM is what bounds a
durable write (buffered + fsync 290-780 MB/s, O_DIRECT 1.7 GB/s)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading

CHUNK = 4 << 20  # bytes copied into the buffer, then written, at a time
ALIGN = 4096


def buffered(fd: int) -> None:
    """Turn O_DIRECT off for ``fd``."""
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)


def write_new(path: str, views: list[memoryview], bounce: Bounce) -> int | None:
    """Create the file ``path`` holding ``views`` and return its size, written with O_DIRECT
    through ``bounce``'s buffer; None, and no file, where the filesystem refuses O_DIRECT."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o644)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise
    try:
        return write_aligned(fd, views, bounce.get())
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # opened, but its writes refused
            raise
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    finally:
        os.close(fd)


class Bounce(threading.local):
    """A page-aligned buffer per thread (anonymous memory is), made on first use."""

    buffer: mmap.mmap | None = None

    def get(self) -> memoryview:
        if self.buffer is None:
            self.buffer = mmap.mmap(-1, CHUNK)
        return memoryview(self.buffer)


def write_aligned(fd: int, views: list[memoryview], buffer: memoryview) -> int:
    """Copy ``views`` through ``buffer`` into ``fd`` (open with O_DIRECT) in aligned writes;
    the last bytes short of a block are written with O_DIRECT off."""
    fill = total = 0
    for view in views:
        offset = 0
        while offset < len(view):
            n = min(len(view) - offset, CHUNK - fill)
            buffer[fill : fill + n] = view[offset : offset + n]
            fill, offset = fill + n, offset + n
            if fill == CHUNK:
                total += write_fully(fd, buffer[:fill])
                fill = 0
    aligned = fill - fill % ALIGN
    if aligned:
        total += write_fully(fd, buffer[:aligned])
    if fill > aligned:
        buffered(fd)
        total += write_fully(fd, buffer[aligned:fill])
    return total


def write_fully(fd: int, view: memoryview) -> int:
    """Write all of ``view``; after a short write (a full disk on the way) the rest goes
    without O_DIRECT, whose offsets must stay aligned."""
    done = 0
    while done < len(view):
        written = os.write(fd, view[done:])
        if written < len(view) - done:
            buffered(fd)
        done += written
    return done
