"""The FUSE session and operations without a kernel: requests are written into one end of a
SOCK_SEQPACKET socket pair (which keeps message boundaries, as /dev/fuse does) and the session
serves the other end, so the wire format is checked byte by byte: INIT's flags, lookups,
attributes, READDIRPLUS records, reads, the requests declined with ENOSYS (OPEN, OPENDIR: the
kernel then stops sending them and their releases), FORGET answered with nothing, and a failing
handler answered with EIO instead of ending the session."""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from grid.errors import IntegrityError, PathNotFoundError
from grid.mount import operations
from grid.mount import protocol as p
from grid.mount.operations import FIRST_PART, LAST_PART, GridOperations
from grid.mount.session import Session

DIR, FILE, LINK = 0, 1, 2  # grid.store.manifest kinds


@dataclass
class Node:
    id: int
    parent: int
    name: str
    kind: int
    mode: int
    data: bytes = b""
    target: str | None = None

    @property
    def size(self) -> int:
        return len(self.target.encode()) if self.target is not None else len(self.data)

    mtime_ns = 1_700_000_000_123_456_789


class FakeSnapshot:
    """A version of a few entries, answering as grid.service.snapshot.Snapshot does."""

    def __init__(self, nodes: list[Node], bad_rows: bool = False) -> None:
        self.nodes = {n.id: n for n in nodes}
        self.bad_rows = bad_rows
        self.bad_names: set[str] = set()  # rows damaged one by one
        self.reads: list[tuple[int, int, int]] = []
        self.listed_by: list[str] = []  # the thread of each child_rows
        self.version = SimpleNamespace(size=sum(n.size for n in nodes if n.kind == FILE))

    def entry(self, entry_id: int) -> Node:
        if entry_id not in self.nodes:
            raise PathNotFoundError(f"no entry {entry_id}", path=str(entry_id))
        return self.nodes[entry_id]

    def child(self, parent_id: int, name: str) -> Node:
        for n in self.nodes.values():
            if n.parent == parent_id and n.name == name and n.id != 0:
                return n
        raise PathNotFoundError(f"no {name}", path=name)

    def child_rows(self, parent_id: int, after: str = "", limit: int = 1000) -> list[tuple]:
        self.listed_by.append(threading.current_thread().name)
        kids = sorted(
            (n for n in self.nodes.values() if n.parent == parent_id and n.id != 0),
            key=lambda n: n.name,
        )
        return [self._row(n) for n in kids if n.name > after][:limit]

    def _row(self, n: Node) -> tuple:
        """(id, parent, name, kind, size, mode, mtime_ns, target, blobs), as a manifest's."""
        bad = self.bad_rows or n.name in self.bad_names
        name = None if bad else n.name  # a forged manifest: a name that is no text
        return (n.id, n.parent, name, n.kind, n.size, n.mode, n.mtime_ns, n.target, None)

    def path_of(self, entry_id: int) -> str:
        return self.nodes[entry_id].name

    def read(self, entry: Node, offset: int, size: int) -> bytes:
        self.reads.append((entry.id, offset, size))
        if entry.name == "damaged":
            raise IntegrityError("blob does not match its id")
        return entry.data[offset : offset + size]

    def close(self) -> None:
        pass


TREE = [
    Node(0, 0, "", DIR, stat.S_IFDIR | 0o755),
    Node(1, 0, "a.txt", FILE, stat.S_IFREG | 0o644, b"hello world"),
    Node(2, 0, "sub", DIR, stat.S_IFDIR | 0o755),
    Node(3, 2, "big.bin", FILE, stat.S_IFREG | 0o600, bytes(range(256)) * 64),
    Node(4, 0, "link", LINK, stat.S_IFLNK | 0o777, target="a.txt"),
    Node(5, 0, "damaged", FILE, stat.S_IFREG | 0o644, b"x" * 10),
]


class Kernel:
    """The kernel's side of the device: sends requests, reads replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.unique = 0

    def send(self, opcode: int, nodeid: int = 1, body: bytes = b"") -> int:
        self.unique += 2
        head = p.IN_HEADER.pack(
            p.IN_HEADER.size + len(body), opcode, self.unique, nodeid, 0, 0, 1, 0, 0
        )
        self.sock.send(head + body)
        return self.unique

    def reply(self, unique: int) -> tuple[int, bytes]:
        data = self.sock.recv(1 << 21)
        length, error, got = p.OUT_HEADER.unpack_from(data)
        assert got == unique and length == len(data)
        return error, data[p.OUT_HEADER.size :]

    def call(self, opcode: int, nodeid: int = 1, body: bytes = b"") -> tuple[int, bytes]:
        return self.reply(self.send(opcode, nodeid, body))


def _serve(snap: FakeSnapshot) -> Iterator[Kernel]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    session = Session(theirs.fileno(), GridOperations(lambda: snap))  # type: ignore[arg-type,return-value]
    kernel = Kernel(ours)
    init = p.INIT_IN.pack(7, 45, 131072, 0xFFFFFFFF) + bytes(48)
    unique = kernel.send(p.INIT, 0, init)
    session.answer_init()
    error, body = kernel.reply(unique)
    assert error == 0
    major, minor, readahead, flags, _bg, _congestion, max_write, _gran, max_pages, *_ = (
        p.INIT_OUT.unpack(body)
    )
    assert (major, minor, readahead) == (7, p.KERNEL_MINOR, 131072)
    assert flags == p.WANTED  # only what we want of what was offered
    # 1 MiB, nothing written: kernels with large folios for FUSE size them by max_write too.
    assert max_pages == 256 and max_write == 1 << 20
    thread = threading.Thread(target=session.serve, args=(2,), daemon=True)
    thread.start()
    yield kernel
    ours.close()  # the session reads end-of-file and ends
    thread.join(5)
    assert not thread.is_alive()
    theirs.close()


@pytest.fixture
def kernel_and_snap() -> Iterator[tuple[Kernel, FakeSnapshot]]:
    snap = FakeSnapshot(TREE)
    for kernel in _serve(snap):
        yield kernel, snap


def _attr(body: bytes, at: int) -> tuple[int, ...]:
    return p.ATTR.unpack_from(body, at)


def test_lookup_getattr_readlink_and_read(kernel_and_snap):
    kernel, snap = kernel_and_snap
    error, body = kernel.call(p.LOOKUP, 1, b"a.txt\0")
    assert error == 0
    nodeid, _gen, entry_valid, attr_valid, _, _ = p.ENTRY_HEAD.unpack_from(body)
    assert nodeid == 2 and entry_valid == attr_valid == 24 * 3600
    ino, size, blocks, *_times, mode, nlink, uid, gid, _rdev, blksize, _ = _attr(body, 40)
    assert (ino, size, mode, nlink) == (2, 11, stat.S_IFREG | 0o644, 1)
    assert (blocks, uid, gid, blksize) == (1, os.getuid(), os.getgid(), 1 << 20)
    error, body = kernel.call(p.GETATTR, 3, bytes(16))
    assert error == 0 and _attr(body, 16)[4] == 1_700_000_000  # mtime seconds
    assert _attr(body, 16)[7] == 123_456_789 and _attr(body, 16)[10] == 2  # nsec, folder nlink
    error, body = kernel.call(p.READLINK, 5)
    assert (error, body) == (0, b"a.txt")
    read = p.READ_IN.pack(0, 3, 5) + bytes(24)
    assert kernel.call(p.READ, 2, read) == (0, b"lo wo")
    assert kernel.call(p.READ, 4, p.READ_IN.pack(0, 16000, 1 << 20) + bytes(24)) == (
        0,
        TREE[3].data[16000:],
    )
    assert snap.reads == [(1, 3, 5), (3, 16000, 1 << 20)]  # entry ids, as the kernel asked
    assert kernel.call(p.LOOKUP, 1, b"missing\0")[0] == -errno.ENOENT
    assert kernel.call(p.LOOKUP, 1, b"\xff\xfe\0")[0] == -errno.ENOENT  # not UTF-8
    assert kernel.call(p.GETATTR, 999)[0] == -errno.ENOENT
    assert kernel.call(p.READLINK, 2)[0] == -errno.EINVAL  # not a symlink


def test_open_opendir_and_the_rest_are_declined_so_the_kernel_stops_asking(kernel_and_snap):
    kernel, _ = kernel_and_snap
    for opcode in (
        p.OPEN,
        p.OPENDIR,
        p.RELEASE,
        p.GETXATTR,
        p.LISTXATTR,
        p.FLUSH,
        p.ACCESS,
        4,
        9,
        99,
    ):
        assert kernel.call(opcode, 2, bytes(16))[0] == -errno.ENOSYS, opcode


def test_forget_gets_no_reply_and_the_session_goes_on(kernel_and_snap):
    kernel, _ = kernel_and_snap
    kernel.send(p.FORGET, 2, struct.pack("<Q", 1))
    kernel.send(p.BATCH_FORGET, 0, p.BATCH_FORGET_IN.pack(2, 0) + p.FORGET_ONE.pack(2, 1) * 2)
    kernel.send(p.INTERRUPT, 0, struct.pack("<Q", 1))
    assert kernel.call(p.READLINK, 5) == (0, b"a.txt")  # the next reply is this one's


def _listing(body: bytes) -> list[tuple[str, int, int, int]]:
    out, pos = [], 0
    while pos < len(body):
        nodeid = p.ENTRY_HEAD.unpack_from(body, pos)[0]
        mode = _attr(body, pos + 40)[9]
        ino, off, namelen, kind = p.DIRENT_HEAD.unpack_from(body, pos + 128)
        assert ino == nodeid and kind == mode >> 12
        name = body[pos + 152 : pos + 152 + namelen].decode()
        out.append((name, ino, off, mode))
        pos += 152 + namelen + (-namelen % 8)
    return out


def test_readdirplus_pages_by_the_kernels_buffer_and_resumes_after_an_offset(kernel_and_snap):
    kernel, _ = kernel_and_snap
    error, body = kernel.call(p.READDIRPLUS, 1, p.READ_IN.pack(0, 0, 1 << 20) + bytes(24))
    assert error == 0
    listed = _listing(body)
    assert [(name, ino) for name, ino, _, _ in listed] == [
        ("a.txt", 2), ("damaged", 6), ("link", 5), ("sub", 3)
    ]  # fmt: skip
    # A buffer for two records: two, then the rest after the second's offset.
    error, body = kernel.call(p.READDIRPLUS, 1, p.READ_IN.pack(0, 0, 2 * 160) + bytes(24))
    first = _listing(body)
    assert [n for n, *_ in first] == ["a.txt", "damaged"]
    error, body = kernel.call(p.READDIRPLUS, 1, p.READ_IN.pack(0, first[-1][2], 4096) + bytes(24))
    assert [n for n, *_ in _listing(body)] == ["link", "sub"]
    error, body = kernel.call(p.READDIRPLUS, 1, p.READ_IN.pack(0, listed[-1][2], 4096) + bytes(24))
    assert (error, body) == (0, b"")  # after the last entry: the end
    error, body = kernel.call(p.READDIR, 3, p.READ_IN.pack(0, 0, 4096) + bytes(24))
    ino, off, namelen, kind = p.DIRENT_HEAD.unpack_from(body)
    assert (ino, off, body[24 : 24 + namelen], kind) == (4, 3, b"big.bin", stat.S_IFREG >> 12)
    assert (
        kernel.call(p.READDIRPLUS, 2, p.READ_IN.pack(0, 0, 4096) + bytes(24))[0] == -errno.ENOTDIR
    )


def test_damage_is_eio_and_the_session_keeps_serving(kernel_and_snap):
    kernel, snap = kernel_and_snap
    assert kernel.call(p.READ, 6, p.READ_IN.pack(0, 0, 10) + bytes(24))[0] == -errno.EIO
    snap.bad_rows = True
    assert kernel.call(p.READDIRPLUS, 1, p.READ_IN.pack(0, 0, 4096) + bytes(24))[0] == -errno.EIO
    snap.bad_rows = False
    error, body = kernel.call(p.STATFS, 1)
    blocks, bfree, bavail, files, ffree, bsize, namelen, frsize, _ = p.KSTATFS.unpack(body)
    assert (error, bfree, bavail, ffree, namelen) == (0, 0, 0, 0, 255)
    assert files == len(TREE) and bsize == frsize == 1 << 20
    assert blocks == 1  # 16,405 bytes in 1 MiB blocks


def test_many_threads_at_once_each_get_their_own_answer(kernel_and_snap):
    kernel, _ = kernel_and_snap
    wanted = {}
    for i in range(200):  # queued before any is answered: the two threads take turns
        offset = (i * 37) % 16000
        wanted[kernel.send(p.READ, 4, p.READ_IN.pack(0, offset, 100) + bytes(24))] = offset
    for _ in wanted:
        data = kernel.sock.recv(1 << 21)
        _, error, unique = p.OUT_HEADER.unpack_from(data)
        assert error == 0 and data[16:] == TREE[3].data[wanted[unique] : wanted[unique] + 100]


BIG = [
    Node(0, 0, "", DIR, stat.S_IFDIR | 0o755),
    Node(1, 0, "many", DIR, stat.S_IFDIR | 0o755),
    *(Node(i + 2, 1, f"f{i:04d}.txt", FILE, stat.S_IFREG | 0o644, b"x") for i in range(1000)),
]
NAMES = [f"f{i:04d}.txt" for i in range(1000)]


@pytest.fixture
def kernel_and_big() -> Iterator[tuple[Kernel, FakeSnapshot]]:
    snap = FakeSnapshot(BIG)
    for kernel in _serve(snap):
        yield kernel, snap


def _list_all(kernel: Kernel, size: int, ino: int = 2) -> list[list[str]]:
    """The parts a kernel gets listing folder ``ino`` with ``size``-byte requests."""
    parts, offset = [], 0
    while True:
        error, body = kernel.call(p.READDIRPLUS, ino, p.READ_IN.pack(0, offset, size) + bytes(24))
        assert error == 0 and len(body) <= size
        if not body:
            return parts
        listed = _listing(body)
        parts.append([name for name, *_ in listed])
        offset = listed[-1][2]


def test_a_big_listing_comes_in_parts_each_made_while_the_kernel_takes_the_last(kernel_and_big):
    """Kernels since 6.16 ask for 1 MiB of READDIRPLUS (glibc's buffer): the answer comes in
    parts, a small first one, each next twice the last (up to LAST_PART), and each after the
    first (and the empty end) is made ahead by the listing thread, not by the request that
    asks for it."""
    kernel, snap = kernel_and_big
    parts = _list_all(kernel, 1 << 20)
    assert [n for part in parts for n in part] == NAMES
    sizes = [len(part) * 168 for part in parts]  # 152 bytes and a name of 9, padded
    assert len(parts) == 4 and sizes[0] <= FIRST_PART < sizes[0] + 168
    for i, size in enumerate(sizes[1:-1], 1):
        assert size <= min(FIRST_PART << i, LAST_PART) < size + 168
    assert snap.listed_by[0] != "grid-listing"  # the first part: the request's own thread
    assert snap.listed_by[1:] == ["grid-listing"] * (len(parts) - 1)  # the end needs none


def test_the_parts_of_a_listing_stop_growing_at_last_part(monkeypatch):
    monkeypatch.setattr(operations, "LAST_PART", 64 << 10)  # the socket's messages are smaller
    names = [f"f{i:04d}.txt" for i in range(2000)]
    files = [Node(i + 2, 1, n, FILE, stat.S_IFREG | 0o644) for i, n in enumerate(names)]
    for kernel in _serve(FakeSnapshot([*BIG[:2], *files])):
        parts = _list_all(kernel, 1 << 20)
        assert [n for part in parts for n in part] == names
        assert [len(part) for part in parts] == [97, 195, 390, 390, 390, 390, 148]  # 16-64 KiB


def test_page_sized_requests_are_answered_ahead_too(kernel_and_big):
    """Kernels before 6.16 ask a page at a time: each page is made ahead as well, and a
    request smaller than the part made ahead gets what fits of a part made anew."""
    kernel, snap = kernel_and_big
    parts = _list_all(kernel, 4096)
    assert [n for part in parts for n in part] == NAMES
    assert all(len(part) == 4096 // 168 for part in parts[:-1])
    assert snap.listed_by.count("grid-listing") == len(parts) - 1
    # A part bigger than a page is made ahead, then the kernel asks a page of it.
    error, body = kernel.call(p.READDIRPLUS, 2, p.READ_IN.pack(0, 0, 1 << 20) + bytes(24))
    first = _listing(body)
    error, body = kernel.call(p.READDIRPLUS, 2, p.READ_IN.pack(0, first[-1][2], 4096) + bytes(24))
    names = NAMES[len(first) :]
    assert error == 0 and [n for n, *_ in _listing(body)] == names[: 4096 // 168]


def test_two_listings_of_one_folder_in_step_both_get_all_of_it(kernel_and_big):
    kernel, _ = kernel_and_big
    offsets, got = [0, 0], [[], []]
    while any(o is not None for o in offsets):
        for i in (0, 1):
            if offsets[i] is None:
                continue
            request = p.READ_IN.pack(0, offsets[i], 1 << 20) + bytes(24)
            error, body = kernel.call(p.READDIRPLUS, 2, request)
            assert error == 0
            listed = _listing(body)
            got[i] += [name for name, *_ in listed]
            offsets[i] = listed[-1][2] if listed else None
    assert got == [NAMES, NAMES]


def test_damage_met_while_making_a_part_ahead_is_eio_to_the_request_for_it(kernel_and_big):
    kernel, snap = kernel_and_big
    snap.bad_names = {"f0500.txt"}
    error, body = kernel.call(p.READDIRPLUS, 2, p.READ_IN.pack(0, 0, 1 << 20) + bytes(24))
    assert error == 0
    offset, errors = _listing(body)[-1][2], []
    while not errors:
        request = p.READ_IN.pack(0, offset, 1 << 20) + bytes(24)
        error, body = kernel.call(p.READDIRPLUS, 2, request)
        if error:
            errors.append(error)
        else:
            offset = _listing(body)[-1][2]
    assert errors == [-errno.EIO] and offset < 500 + 2
    snap.bad_names = set()
    assert [n for part in _list_all(kernel, 1 << 20) for n in part] == NAMES  # goes on
