"""create from an archive URL, served by a real HTTP server on 127.0.0.1 (tests/archive_server)."""

from __future__ import annotations

import _thread
import io
import os
import stat
import subprocess
import tarfile
import threading
import time

import pytest
import zstandard

import grid
from grid.errors import Interrupted, SourceError, UsageError
from grid.records import FAILED, INTERRUPTED
from tests.archive_server import ArchiveServer
from tests.conftest import make_mixed_tree


def tree_of(root: str) -> dict[str, tuple[object, ...]]:
    """Every path under ``root``: ('dir',), ('file', bytes, perms) or ('link', target)."""
    out: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", f.read(), stat.S_IMODE(st.st_mode))
    return out


@pytest.fixture
def server():
    with ArchiveServer() as s:
        yield s


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A mixed tree inside one top folder, and GNU tar / zip archives of it."""
    base = tmp_path_factory.mktemp("archive-src")
    top = base / "my_dataset"
    top.mkdir()
    make_mixed_tree(str(top), big_mib=3)
    os.unlink(top / "dangling")  # an absolute link: refused in archives (test_hostile_archives)
    os.link(top / "val/labels.csv", top / "val/labels-hardlink.csv")
    archives = {}
    for flag, suffix in (("", "tar"), ("z", "tar.gz"), ("j", "tar.bz2"), ("J", "tar.xz")):
        out = base / f"my_dataset.{suffix}"
        subprocess.run(["tar", f"c{flag}f", str(out), "-C", str(base), "my_dataset"], check=True)
        archives[suffix] = out.read_bytes()
    archives["tar.zst"] = zstandard.ZstdCompressor().compress(archives["tar"])
    zip_out = base / "my_dataset.zip"
    subprocess.run(["zip", "-qry", str(zip_out), "my_dataset"], cwd=base, check=True)
    archives["zip"] = zip_out.read_bytes()
    return base, archives


def _extracted(tmp_path, suffix: str, data: bytes) -> dict[str, tuple[object, ...]]:
    """What `tar x` (or `unzip`) makes of the archive, from inside its top folder."""
    out = tmp_path / f"x-{suffix.replace('.', '-')}"
    out.mkdir()
    archive = tmp_path / f"a.{suffix}"
    archive.write_bytes(data)
    if suffix == "zip":
        subprocess.run(["unzip", "-q", str(archive), "-d", str(out)], check=True)
    elif suffix == "tar.zst":
        plain = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 30)
        subprocess.run(["tar", "xf", "-", "-C", str(out)], input=plain, check=True)
    else:
        subprocess.run(["tar", "xf", str(archive), "-C", str(out)], check=True)
    return tree_of(str(out / "my_dataset"))


@pytest.mark.parametrize("suffix", ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip"])
def test_archive_round_trip_equals_extraction(client, server, dataset, tmp_path, suffix):
    _, archives = dataset
    # a name without the suffix: the kind is told by content
    server.served.files["/download/blob"] = archives[suffix]
    v = client.create(server.url("/download/blob"), "ds")
    assert v.status == "succeeded"
    out = tmp_path / "restored"
    client.download("ds", v.number, str(out))
    assert tree_of(str(out)) == _extracted(tmp_path, suffix, archives[suffix])
    assert client.read_bytes("ds", v.number, "val/labels-hardlink.csv") == client.read_bytes(
        "ds", v.number, "val/labels.csv"
    )
    assert client.verify("ds", v.number).ok


def test_name_from_url_top_folder_and_keep_root(client, server, dataset):
    _, archives = dataset
    server.served.files["/sets/my_dataset.tar.gz"] = archives["tar.gz"]
    v = client.create(server.url("/sets/my_dataset.tar.gz"))
    assert v.ref == "my_dataset:1"
    assert {os.path.basename(f.path) for f in client.ls("my_dataset", 1)} >= {"train", "val", "big"}
    kept = client.create(server.url("/sets/my_dataset.tar.gz"), "kept", keep_root=True)
    assert [os.path.basename(f.path) for f in client.ls("kept", kept.number)] == ["my_dataset"]


def test_zip_uses_range_requests_when_offered(client, server, dataset):
    _, archives = dataset
    server.served.files["/d.zip"] = archives["zip"]
    client.create(server.url("/d.zip"))
    ranged = [r for p, r in server.served.requests if p == "/d.zip" and r]
    assert ranged, "a zip on a Range-capable server is read with Range requests"
    server.served.requests.clear()
    server.served.ranges = False
    v = client.create(server.url("/d.zip"), "spooled")
    assert v.status == "succeeded"
    assert not [r for _, r in server.served.requests if r]
    assert not os.listdir(os.path.join(client.home, "tmp")), "the spool is deleted"


def test_redirects_are_followed_and_bounded(client, server, dataset):
    _, archives = dataset
    server.served.files["/real.tar"] = archives["tar"]
    server.served.redirects = {"/a.tar": "/b.tar", "/b.tar": "/real.tar", "/loop": "/loop"}
    assert client.create(server.url("/a.tar"), "redir").status == "succeeded"
    with pytest.raises(UsageError, match="redirects"):
        client.create(server.url("/loop"), "loop")
    assert [d.name for d in client.list()] == ["redir"]


def test_broken_download_resumes_with_range(client, server, dataset):
    _, archives = dataset
    data = archives["tar.gz"]
    server.served.files["/big.tar.gz"] = data
    server.served.break_after = len(data) // 2
    v = client.create(server.url("/big.tar.gz"), "resumed")
    assert v.status == "succeeded"
    resumed = [int(r[6:-1]) for p, r in server.served.requests if r.startswith("bytes=")]
    assert len(resumed) == 1 and 0 < resumed[0] <= len(data) // 2  # from what had arrived
    assert v.progress_done == len(data) and v.progress_total == len(data)


def test_broken_download_without_range_fails_clearly(client, server, dataset):
    _, archives = dataset
    data = archives["tar.gz"]
    server.served.files["/big.tar.gz"] = data
    server.served.ranges = False
    server.served.break_after = len(data) // 2
    with pytest.raises(SourceError, match="cannot resume"):
        client.create(server.url("/big.tar.gz"), "broken")
    (v,) = client.versions("broken")
    assert v.status == FAILED and "cannot resume" in (v.reason or "")


def test_not_an_archive_and_missing_url_create_nothing(client, server):
    server.served.files["/page.html"] = b"<html><body>hello</body></html>" * 40
    with pytest.raises(UsageError, match=r"not a \.zip, \.tar"):
        client.create(server.url("/page.html"), "page")
    with pytest.raises(UsageError, match="404"):
        client.create(server.url("/missing.tar.gz"), "missing")
    with pytest.raises(UsageError, match="ftp:// is not supported"):
        client.create("ftp://127.0.0.1/x.tar", "ftp")
    assert client.list() == []


def test_internal_addresses_refused_unless_allowed(home, server, dataset):
    _, archives = dataset
    server.served.files["/d.tar"] = archives["tar"]
    with grid.Client(str(home), allow_private_urls=False) as strict:
        with pytest.raises(UsageError, match="internal address"):
            strict.create(server.url("/d.tar"), "d")
        assert strict.list() == []
    assert not server.served.requests, "a refused URL is never fetched"


def test_tar_with_members_out_of_order_and_implicit_folders(client, server):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("z/b.txt", b"b"), ("a.txt", b"a"), ("z/a/c.txt", b"c")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("z")  # its own entry comes after its contents
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o700, 1_600_000_000
        tar.addfile(folder)
    server.served.files["/o.tar"] = buf.getvalue()
    v = client.create(server.url("/o.tar"))
    # storage order: depth first, names sorted, whatever the archive's order
    assert [path for path, _ in client.iter_files("o", v.number)] == [
        "a.txt",
        "z/a/c.txt",
        "z/b.txt",
    ]
    assert [os.path.basename(f.path) for f in client.ls("o", v.number, "z")] == ["a", "b.txt"]
    z = client.stat("o", v.number, "z")
    assert stat.S_IMODE(z.mode) == 0o700 and z.mtime_ns == 1_600_000_000 * 10**9


def test_ctrl_c_during_a_stalled_download_stops_promptly_then_resumes(client, server, dataset):
    _, archives = dataset
    data = archives["tar.gz"]
    server.served.files["/s.tar.gz"] = data
    server.served.stall_after = len(data) // 2
    threading.Timer(1.5, _thread.interrupt_main).start()  # Ctrl-C
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            client.create(server.url("/s.tar.gz"), "stalled")
        assert time.monotonic() - started < 6, "Ctrl-C must not wait for the network"
    finally:
        server.served.stall_after = None
        server.served.resume.set()
    (stopped,) = client.versions("stalled")
    assert stopped.status == INTERRUPTED
    again = client.create(server.url("/s.tar.gz"), "stalled")
    assert (again.number, again.status) == (1, "succeeded")


def test_same_archive_again_stores_nothing_new_or_no_version(client, server, dataset):
    _, archives = dataset
    server.served.files["/d.tar.xz"] = archives["tar.xz"]
    first = client.create(server.url("/d.tar.xz"), "again")
    second = client.create(server.url("/d.tar.xz"), "again")
    assert second.number == 2 and second.stored_bytes < first.stored_bytes // 20  # a manifest
    assert client.diff("again", 1, 2).added == []
    same = client.create(server.url("/d.tar.xz"), "again", skip_unchanged=True)
    assert same.number == 2 and len(client.versions("again")) == 2
