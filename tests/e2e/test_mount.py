"""A real FUSE mount: the tree byte for byte, read-only, EIO on damage, side by side, dead
mounts."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import random
import shutil
import signal
import stat
import struct
import subprocess
import time

import pytest

from grid.mount.operations import FIRST_PART
from tests.e2e.conftest import GRID
from tests.service.test_create_roundtrip import source_tree

pytestmark = pytest.mark.fuse
if shutil.which("fusermount3") is None:
    pytest.skip("no fusermount3 here (apt-get install fuse3)", allow_module_level=True)
if not os.path.exists("/dev/fuse"):
    pytest.skip("no /dev/fuse here", allow_module_level=True)


def _grid_mounts() -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if line.split()[2] == "fuse.grid"]


def _runner(home, **env: str):
    """Run the CLI with ``env``; at the end, unmount what the test left mounted."""
    full = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0", **env}

    def run(*args):
        return subprocess.run([*GRID, *args], capture_output=True, text=True, env=full, timeout=60)

    yield run
    for mp in _grid_mounts():
        if mp.startswith(str(home.parent)):
            subprocess.run(["fusermount3", "-u", "-z", mp], check=False)


@pytest.fixture
def run(home):
    yield from _runner(home)


def test_mounted_tree_equals_the_source(run, mixed_tree, tmp_path):
    root, files = mixed_tree
    assert run("datastore", "create", str(root)).returncode == 0
    mp = tmp_path / "mnt"
    r = run("datastore", "mount", "my_dataset:1", str(mp))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(mp)
    assert source_tree(mp) == source_tree(root)
    data = files["big/blob.bin"]
    rng = random.Random(3)
    fd = os.open(mp / "big" / "blob.bin", os.O_RDONLY)
    try:
        for _ in range(100):
            off = rng.randrange(len(data))
            n = rng.choice([1, 4096, 300_000])
            assert os.pread(fd, n, off) == data[off : off + n]
    finally:
        os.close(fd)
    assert run("datastore", "unmount", str(mp)).returncode == 0
    assert str(mp) not in _grid_mounts() and os.listdir(mp) == []


def test_mount_is_read_only(run, mixed_tree, tmp_path):
    root, _ = mixed_tree
    run("datastore", "create", str(root))
    mp = tmp_path / "mnt"
    assert run("datastore", "mount", "my_dataset", str(mp)).returncode == 0
    for attempt in (
        lambda: os.open(mp / "new.txt", os.O_WRONLY | os.O_CREAT),
        lambda: os.open(mp / "val" / "labels.csv", os.O_WRONLY | os.O_APPEND),
        lambda: os.mkdir(mp / "d"),
        lambda: os.unlink(mp / "empty.txt"),
    ):
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.EROFS


def test_damaged_blob_gives_eio_and_a_log_line_never_wrong_bytes(run, home, tmp_path):
    src = tmp_path / "d"
    src.mkdir()
    (src / "good.bin").write_bytes(os.urandom(10_000))
    (src / "hurt.bin").write_bytes(os.urandom(10_000))
    run("datastore", "create", str(src))
    packs = [
        os.path.join(d, f) for d, _, fs in os.walk(home / "objects") for f in fs if "/packs/" in d
    ]
    with open(packs[0], "r+b") as f:
        f.seek(8 + 10_000 + 100)  # inside hurt.bin, the second blob
        f.write(b"\0" * 8)
    mp = tmp_path / "mnt"
    assert run("datastore", "mount", "d:1", str(mp)).returncode == 0
    assert (mp / "good.bin").read_bytes() == (src / "good.bin").read_bytes()
    with pytest.raises(OSError) as info:
        (mp / "hurt.bin").read_bytes()
    assert info.value.errno == errno.EIO
    log = (home / "logs" / "mount-d-1.log").read_text()
    assert "hurt.bin" in log and "EIO" in log


def test_two_versions_side_by_side_and_unmount_all(run, tmp_path):
    src = tmp_path / "ds"
    src.mkdir()
    mps = []
    for i in (1, 2):
        (src / "f.txt").write_text(f"v{i}")
        run("datastore", "create", str(src))
    for i in (1, 2):
        mp = tmp_path / f"m{i}"
        assert run("datastore", "mount", f"ds:{i}", str(mp)).returncode == 0
        mps.append(mp)
    assert [(mp / "f.txt").read_text() for mp in mps] == ["v1", "v2"]
    r = run("datastore", "unmount", "--all")
    assert r.returncode == 0
    assert not any(str(mp) in _grid_mounts() for mp in mps)


def test_unmount_clears_a_dead_mount(run, tmp_path):
    src = tmp_path / "ds"
    src.mkdir()
    (src / "f.txt").write_text("x")
    run("datastore", "create", str(src))
    mp = tmp_path / "m"
    assert run("datastore", "mount", "ds:1", str(mp)).returncode == 0
    pids = subprocess.run(
        ["pgrep", "-f", f"datastore mount ds:1 {mp}"], capture_output=True, text=True
    ).stdout.split()
    assert pids
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.3)
    with pytest.raises(OSError) as info:
        os.listdir(mp)
    assert info.value.errno == errno.ENOTCONN
    assert run("datastore", "unmount", str(mp)).returncode == 0
    assert os.listdir(mp) == [] and str(mp) not in _grid_mounts()
    assert run("datastore", "mount", "ds:1", str(mp)).returncode == 0  # usable again
    assert (mp / "f.txt").read_text() == "x"


def test_mount_errors_are_one_line(run, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    run("datastore", "create", str(busy))
    for args, needle in (
        (["datastore", "mount", "nosuch"], "no datastore"),
        (["datastore", "mount", "busy:1", str(busy)], "not empty"),
        (["datastore", "unmount", str(tmp_path)], "not a grid mount"),
    ):
        r = run(*args)
        assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr


def test_blob_cache_stays_under_a_small_limit(run, home, tmp_path):
    src = tmp_path / "ds"
    src.mkdir()
    files = {f"f{i:02d}.bin": os.urandom(100_000) for i in range(40)}  # 4 MB through 1 MiB
    for name, data in files.items():
        (src / name).write_bytes(data)
    run("datastore", "create", str(src))
    mp = tmp_path / "m"
    assert run("datastore", "mount", "ds:1", str(mp), "--cache-size", "1M").returncode == 0
    assert {name: (mp / name).read_bytes() for name in files} == files
    assert run("datastore", "unmount", str(mp)).returncode == 0
    cache = home / "cache" / "local" / "blobs"
    deadline = time.time() + 10  # the mount process flushes and evicts as it exits
    while True:
        blobs = [
            os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(cache)
            for f in fs
            if d != str(cache)
        ]
        if (blobs and sum(blobs) <= 1 << 20) or time.time() > deadline:
            break
        time.sleep(0.1)
    assert blobs and sum(blobs) <= 1 << 20
    r = run("datastore", "mount", "ds:1", str(mp), "--cache-size", "bogus")
    assert r.returncode == 2 and "not a size" in r.stderr


def test_several_worker_processes_serve_one_mount(run, tmp_path):
    src = tmp_path / "many"
    (src / "d").mkdir(parents=True)
    files = {f"d/{i:04d}.bin": os.urandom(i % 3000) for i in range(700)}  # > 2 readdir pages
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    run("datastore", "create", str(src))
    mp = tmp_path / "m"
    assert run("datastore", "mount", "many:1", str(mp), "--workers", "3").returncode == 0
    pids = subprocess.run(
        ["pgrep", "-f", f"datastore mount many:1 {mp}"], capture_output=True, text=True
    ).stdout.split()
    assert len(pids) == 3
    for _ in range(3):  # listings resume across pages whichever process serves them
        assert sorted(os.listdir(mp / "d")) == sorted(p.split("/")[1] for p in files)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        got = dict(pool.map(lambda rel: (rel, (mp / rel).read_bytes()), files))
    assert got == files
    assert run("datastore", "unmount", str(mp)).returncode == 0
    deadline = time.time() + 10
    while (
        time.time() < deadline
        and subprocess.run(
            ["pgrep", "-f", f"datastore mount many:1 {mp}"], capture_output=True
        ).stdout
    ):
        time.sleep(0.05)
    assert not subprocess.run(
        ["pgrep", "-f", f"datastore mount many:1 {mp}"], capture_output=True
    ).stdout


_GETDENTS64 = {"x86_64": 217, "aarch64": 61}.get(platform.machine())


def _getdents_calls(folder) -> list[list[str]]:
    """The names each getdents64 call returns, reading ``folder`` with a 1 MiB buffer (what
    glibc's readdir uses where st_blksize is 1 MiB): one call per answer of the mount."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(1 << 20)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    calls = []
    try:
        while (n := libc.syscall(_GETDENTS64, fd, buf, len(buf))) > 0:
            names, pos = [], 0
            while pos < n:  # linux_dirent64: ino, off, reclen, type, name
                reclen = struct.unpack_from("<H", buf.raw, pos + 16)[0]
                names.append(buf.raw[pos + 19 : pos + reclen].split(b"\0", 1)[0].decode())
                pos += reclen
            calls.append(names)
        assert n == 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(fd)
    return calls


@pytest.mark.skipif(
    _GETDENTS64 is None, reason="getdents64's number is known here for x86_64 and aarch64"
)
def test_a_big_folder_is_listed_in_parts_with_its_attributes(run, tmp_path):
    """``ls -l`` of 1,000 files on a fresh mount: the kernel asks for 1 MiB of READDIRPLUS,
    the mount answers in parts (each next part made while the kernel takes the last), so a
    reader's getdents calls each get a part; every entry comes with its attributes, and a
    second listing comes from the kernel's cache."""
    src = tmp_path / "ls"
    (src / "d").mkdir(parents=True)
    names = [f"f{i:05d}.txt" for i in range(1000)]
    for i, name in enumerate(names):
        (src / "d" / name).write_bytes(b"%099d\n" % i)
    assert run("datastore", "create", str(src)).returncode == 0
    mp = tmp_path / "m"
    assert run("datastore", "mount", "ls:1", str(mp)).returncode == 0
    calls = _getdents_calls(mp / "d")
    assert [n for call in calls for n in call] == names  # in name order, each once
    assert len(calls) >= 3 and len(calls[0]) * 168 <= FIRST_PART  # 152 bytes and a name
    assert len(calls[0]) < len(calls[1]) < len(calls[2])
    for name in names:
        st = os.lstat(mp / "d" / name)
        assert stat.S_ISREG(st.st_mode) and st.st_size == 100 and st.st_blksize == 1 << 20
    assert os.stat(mp / "d").st_blksize == 1 << 20
    assert [n for call in _getdents_calls(mp / "d") for n in call] == names  # cached
    assert sorted(os.listdir(mp / "d")) == names
    assert run("datastore", "unmount", str(mp)).returncode == 0


def test_threads_reading_one_file_at_once_and_the_mount_reads_ahead_a_mib(run, tmp_path):
    """Many readers of one multi-blob file at random places, at once: the mount's request
    threads share one snapshot and each read gets its own bytes. As root, the mount lets the
    kernel read ahead 1 MiB (its default is 128 KiB); SIGTERM unmounts it at once."""
    src = tmp_path / "one"
    src.mkdir()
    data = os.urandom(9 << 20)
    (src / "big.bin").write_bytes(data)
    run("datastore", "create", str(src))
    mp = tmp_path / "m"
    assert run("datastore", "mount", "one:1", str(mp)).returncode == 0
    if os.geteuid() == 0:
        with open("/proc/self/mountinfo") as f:
            (device,) = [line.split()[2] for line in f if line.split()[4] == str(mp)]
        with open(f"/sys/class/bdi/{device}/read_ahead_kb") as f:
            assert f.read().strip() == "1024"

    def reader(seed: int) -> int:
        rng = random.Random(seed)
        fd = os.open(mp / "big.bin", os.O_RDONLY)
        try:
            for _ in range(40):
                at, n = rng.randrange(len(data)), rng.choice([1, 4096, 200_000, 2 << 20])
                assert os.pread(fd, n, at) == data[at : at + n]
        finally:
            os.close(fd)
        return seed

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(reader, range(16))) == list(range(16))
    (pid,) = subprocess.run(
        ["pgrep", "-f", f"datastore mount one:1 {mp}"], capture_output=True, text=True
    ).stdout.split()
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.time() + 5
    while time.time() < deadline and str(mp) in _grid_mounts():
        time.sleep(0.02)
    assert str(mp) not in _grid_mounts()


def test_a_mounted_version_is_not_deleted_and_gc_keeps_it_readable(run, tmp_path):
    """Issue 12.3: delete (and --keep-last) refuse a mounted version, naming the mount; the
    mount reads on through gc; once unmounted the delete goes through."""
    src = tmp_path / "d"
    src.mkdir()
    data = os.urandom(3 << 20)
    (src / "k.bin").write_bytes(data)
    assert run("datastore", "create", str(src), "--name", "g").returncode == 0
    (src / "other.bin").write_bytes(os.urandom(1000))
    assert run("datastore", "create", str(src), "--name", "g").returncode == 0
    mp = tmp_path / "m t"  # a space: /proc/mounts escapes it
    assert run("datastore", "mount", "g:1", str(mp)).returncode == 0
    r = run("datastore", "delete", "g:1", "--yes")
    assert r.returncode == 4 and f"mounted at {mp}" in r.stderr, r.stderr
    r = run("datastore", "delete", "g", "--yes")
    assert r.returncode == 4 and "g:1 is in use" in r.stderr
    r = run("datastore", "create", str(src), "--name", "g", "--keep-last", "1")
    assert r.returncode == 0 and "kept g:1 for now" in r.stderr, r.stderr
    assert run("datastore", "gc", "--grace", "0").returncode == 0
    assert (mp / "k.bin").read_bytes() == data
    assert run("datastore", "unmount", str(mp)).returncode == 0
    assert run("datastore", "delete", "g:1", "--yes").returncode == 0


def test_gc_repacking_under_a_mount_keeps_it_readable(run, tmp_path):
    """Issue 13.1's sequence: a mounted g:2 reads on after gc repacks g:1's pack; unmounted,
    the next gc deletes what it kept."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "big").write_bytes(os.urandom(24 << 20))
    k = os.urandom(8 << 20)
    (d / "k").write_bytes(k)
    assert run("datastore", "create", str(d), "--name", "g").returncode == 0
    (d / "big").unlink()
    assert run("datastore", "create", str(d), "--name", "g").returncode == 0
    mp = tmp_path / "m"
    assert run("datastore", "mount", "g:2", str(mp)).returncode == 0
    assert run("datastore", "delete", "g:1", "--yes").returncode == 0
    r = run("datastore", "gc", "--grace", "0")
    assert r.returncode == 0 and "1 repacked" in r.stdout, r.stdout
    assert (mp / "k").read_bytes() == k  # no EIO
    assert run("datastore", "unmount", str(mp)).returncode == 0
    r = run("datastore", "gc", "--grace", "0", "--json")
    assert r.returncode == 0 and '"retired_deleted": 2' in r.stdout, r.stdout
    assert run("datastore", "verify", "g:2").returncode == 0


@pytest.fixture
def remote_run(team_server, home):
    """``run`` logged in to the session's server as a fresh user."""
    from tests.team import new_user

    database, url = team_server
    _, key = new_user(database)
    yield from _runner(home, GRID_URL=url, GRID_API_KEY=key)


def test_team_mode_mounts_the_same_tree(remote_run, mixed_tree, tmp_path):
    """Logged in, a mount reads through the server's object URLs and the blob cache."""
    root, files = mixed_tree
    assert remote_run("datastore", "create", str(root)).returncode == 0
    mp = tmp_path / "mnt"
    r = remote_run("datastore", "mount", "my_dataset:1", str(mp))
    assert r.returncode == 0, r.stderr
    assert source_tree(mp) == source_tree(root)
    assert (mp / "big" / "blob.bin").read_bytes() == files["big/blob.bin"]
    assert remote_run("datastore", "unmount", str(mp)).returncode == 0
