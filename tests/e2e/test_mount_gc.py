"""gc beside readers, through a real mount: a mounted version whose packs gc repacks reads on,
right bytes, no EIO, while gc runs again and again; the objects kept for it go once it is
unmounted. A download running while gc repacks is the same kind of reader."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from tests.e2e.test_mount import _grid_mounts, _runner

pytestmark = pytest.mark.fuse
if shutil.which("fusermount3") is None:
    pytest.skip("no fusermount3 here (apt-get install fuse3)", allow_module_level=True)
if not os.path.exists("/dev/fuse"):
    pytest.skip("no /dev/fuse here", allow_module_level=True)


@pytest.fixture
def run(home):
    yield from _runner(home)


def _two_versions(run, tmp_path) -> dict[str, bytes]:
    """g:1 holds a big file beside the others; g:2 drops it, so deleting g:1 leaves packs
    that are mostly unneeded: gc repacks them and rewrites g:2's manifest."""
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    kept = {f"deep/s{i:03}": os.urandom(200 + i * 97) for i in range(120)}
    kept["k.bin"] = os.urandom(6 << 20)
    for rel, data in kept.items():
        (src / rel).write_bytes(data)
    (src / "big.bin").write_bytes(os.urandom(24 << 20))
    assert run("datastore", "create", str(src), "--name", "g").returncode == 0
    (src / "big.bin").unlink()
    assert run("datastore", "create", str(src), "--name", "g").returncode == 0
    return kept


def _gc(run) -> dict:
    r = run("datastore", "gc", "--grace", "0", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _read_loop(root, files: dict[str, bytes], stop: threading.Event, seen: list, errors: list):
    digests = {rel: hashlib.sha256(data).digest() for rel, data in files.items()}
    while not stop.is_set():
        for rel, digest in digests.items():
            try:
                with open(os.path.join(root, rel), "rb") as f:
                    got = hashlib.sha256(f.read()).digest()
            except OSError as exc:
                errors.append(f"{rel}: {exc}")
                return
            if got != digest:
                errors.append(f"{rel}: wrong bytes")
                return
        seen.append(time.monotonic())


def test_a_mount_reads_on_while_gc_repacks_its_packs(run, tmp_path):
    files = _two_versions(run, tmp_path)
    mp = tmp_path / "mnt"
    r = run("datastore", "mount", "g:2", str(mp))
    assert r.returncode == 0, r.stderr
    stop, seen, errors = threading.Event(), [], []
    readers = [
        threading.Thread(target=_read_loop, args=(mp, files, stop, seen, errors)) for _ in range(2)
    ]
    for t in readers:
        t.start()
    try:
        assert run("datastore", "delete", "g:1", "--yes").returncode == 0
        first = _gc(run)
        assert first["packs_repacked"] >= 1 and first["manifests_rewritten"] == 1
        assert first["kept_for_readers"] >= 2  # the mount's old pack(s) and manifest
        passes = len(seen)
        again = _gc(run)  # the mount still holds the old objects: a second gc keeps them too
        assert again["kept_for_readers"] >= 2
        deadline = time.monotonic() + 60
        while len(seen) < passes + 4 and not errors and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in readers:
            t.join(60)
    assert errors == []
    assert len(seen) >= passes + 4  # whole passes over every file after the repack
    # a new reader sees the rewritten version: same bytes, through the new manifest
    out = tmp_path / "out"
    assert run("datastore", "download", "g:2", str(out)).returncode == 0
    assert all((out / rel).read_bytes() == data for rel, data in files.items())
    assert run("datastore", "verify", "g:2").returncode == 0
    # once unmounted, nobody needs the replaced objects: gc reclaims them
    subprocess.run(["fusermount3", "-u", str(mp)], check=True)
    deadline = time.monotonic() + 10
    while str(mp) in _grid_mounts() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the mount process exits and its reader locks go with it
    last = _gc(run)
    assert last["kept_for_readers"] == 0
    assert last["retired_deleted"] >= 2  # the objects kept for the mount are deleted now
    after = _gc(run)
    assert (after["retired_deleted"], after["bytes_reclaimed"], after["packs_repacked"]) == (
        0,
        0,
        0,
    )
