"""The FUSE wire format a read-only filesystem needs (``include/uapi/linux/fuse.h``, protocol
7.x): request opcodes, the INIT handshake, and the replies as packed bytes.

Only what a read-only, immutable tree answers is here: lookups, attributes, listings with
attributes (READDIRPLUS), symlinks, reads and statfs. Everything else is answered with an
errno by ``grid.mount.session``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

KERNEL_MAJOR = 7
KERNEL_MINOR = 31  # what we speak: max_pages, cache_symlinks, no_opendir (newer kernels agree)
ROOT_ID = 1

# Opcodes (fuse_opcode).
LOOKUP, FORGET, GETATTR, READLINK = 1, 2, 3, 5
OPEN, READ, STATFS, RELEASE = 14, 15, 17, 18
GETXATTR, LISTXATTR, FLUSH, INIT = 22, 23, 25, 26
OPENDIR, READDIR, RELEASEDIR, ACCESS = 27, 28, 29, 34
INTERRUPT, DESTROY, BATCH_FORGET, READDIRPLUS = 36, 38, 42, 44
NO_REPLY = frozenset({FORGET, BATCH_FORGET, INTERRUPT})

# INIT flags (fuse_init_in/out.flags).
ASYNC_READ = 1 << 0
DO_READDIRPLUS = 1 << 13
PARALLEL_DIROPS = 1 << 18
MAX_PAGES = 1 << 22
CACHE_SYMLINKS = 1 << 23
WANTED = ASYNC_READ | DO_READDIRPLUS | PARALLEL_DIROPS | MAX_PAGES | CACHE_SYMLINKS

IN_HEADER = struct.Struct("<IIQQIIIHH")  # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")  # len error unique
INIT_IN = struct.Struct("<IIII")  # major minor max_readahead flags
INIT_OUT = struct.Struct("<IIIIHHIIHHI28x")  # 64 bytes
READ_IN = struct.Struct("<QQI")  # fh offset size (then read_flags, lock_owner, flags)
FORGET_ONE = struct.Struct("<QQ")  # nodeid nlookup
BATCH_FORGET_IN = struct.Struct("<II")  # count dummy
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # fuse_attr, 88 bytes
ENTRY_HEAD = struct.Struct("<QQQQII")  # nodeid generation entry_valid attr_valid nsecs
ATTR_HEAD = struct.Struct("<QII")  # attr_valid attr_valid_nsec dummy
DIRENT_HEAD = struct.Struct("<QQII")  # ino off namelen type
# A READDIRPLUS record's fixed part: fuse_entry_out then fuse_dirent's head (152 bytes).
DIRENTPLUS = struct.Struct("<QQQQII" + ATTR.format[1:] + "QQII")
PADDING = [b"\0" * (-n % 8) for n in range(8)]  # after a name of n (mod 8) bytes
KSTATFS = struct.Struct("<QQQQQIIII24x")  # blocks bfree bavail files ffree bsize namelen frsize
MAX_BACKGROUND = 64
BLOCK_SIZE = 1 << 20  # st_blksize, and statfs's block
MAX_PAGES_WANTED = 256  # 1 MiB reads (the kernel's maximum)
# Nothing is written, but the kernel sizes more than writes by it: kernels with large folios
# for FUSE ("fuse: enable large folios", after 6.18) cache a file's pages in folios of up to
# min(max_write, max_read, max_pages) bytes, and a fix proposed for 6.16's larger READDIR
# buffers caps them by it too. 4 KiB would keep both at a page.
MAX_WRITE = MAX_PAGES_WANTED * 4096


class Attributes(NamedTuple):
    """What ``stat`` shows of an entry."""

    ino: int
    size: int
    mode: int
    nlink: int
    uid: int
    gid: int
    mtime_ns: int


def init_reply(request: bytes | memoryview) -> bytes:
    """The answer to the kernel's INIT: our protocol version and the flags we want of those
    it offered."""
    major, minor, max_readahead, offered = INIT_IN.unpack_from(request)
    if major != KERNEL_MAJOR:
        raise OSError(f"the kernel speaks FUSE {major}.{minor}, grid speaks {KERNEL_MAJOR}.x")
    return INIT_OUT.pack(
        KERNEL_MAJOR,
        min(minor, KERNEL_MINOR),
        max_readahead,
        offered & WANTED,
        MAX_BACKGROUND,
        MAX_BACKGROUND * 3 // 4,
        MAX_WRITE,
        1,  # time_gran: nanoseconds
        MAX_PAGES_WANTED,
        0,
        0,
    )


def attr_fields(
    ino: int, size: int, mode: int, nlink: int, uid: int, gid: int, mtime_ns: int
) -> tuple[int, ...]:
    """fuse_attr's fields in order (times are the mtime; blocks of 512 bytes)."""
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    return (
        ino, size, (size + 511) >> 9, seconds, seconds, seconds, nanos, nanos, nanos,
        mode, nlink, uid, gid, 0, BLOCK_SIZE, 0,
    )  # fmt: skip


def entry_out(a: Attributes, timeout: int) -> bytes:
    """fuse_entry_out: a looked-up entry, cacheable by the kernel for ``timeout`` seconds."""
    return ENTRY_HEAD.pack(a.ino, 0, timeout, timeout, 0, 0) + ATTR.pack(*attr_fields(*a))


def attr_out(a: Attributes, timeout: int) -> bytes:
    """fuse_attr_out: an entry's attributes, cacheable for ``timeout`` seconds."""
    return ATTR_HEAD.pack(timeout, 0, 0) + ATTR.pack(*attr_fields(*a))


def direntplus(
    ino: int, size: int, mode: int, nlink: int, uid: int, gid: int, mtime_ns: int,
    name: bytes, offset: int, timeout: int,
) -> bytes:  # fmt: skip
    """One READDIRPLUS record (fuse_direntplus, padded to 8 bytes) of the entry with these
    attributes; ``offset`` is where the next listing resumes after it. It runs once per
    entry of every listing, so it takes plain fields and spells out ``attr_fields`` inline
    (a call and a tuple per entry cost a third of ``ls -l``'s Python time)."""
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    head = DIRENTPLUS.pack(
        ino, 0, timeout, timeout, 0, 0,
        ino, size, (size + 511) >> 9, seconds, seconds, seconds, nanos, nanos, nanos,
        mode, nlink, uid, gid, 0, BLOCK_SIZE, 0,
        ino, offset, len(name), mode >> 12,
    )  # fmt: skip
    return head + name + PADDING[len(name) & 7]


def dirent(ino: int, mode: int, name: bytes, offset: int) -> bytes:
    """One READDIR record (fuse_dirent, padded to 8 bytes)."""
    return DIRENT_HEAD.pack(ino, offset, len(name), mode >> 12) + name + PADDING[len(name) & 7]


def statfs_out(blocks: int, files: int, block_size: int, name_max: int = 255) -> bytes:
    """fuse_statfs_out of a full, read-only filesystem: nothing free."""
    return KSTATFS.pack(blocks, 0, 0, files, 0, block_size, name_max, block_size, 0)
