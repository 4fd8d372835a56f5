"""download writes only inside DEST, through names it controls, with bounded memory, holes kept,
and errors that name the destination path; a failure leaves no temporary files behind."""

from __future__ import annotations

import os
import random
import re
import shutil
import stat
import subprocess
import tracemalloc

import pytest

import grid
from tests.conftest import small_tmpfs
from tests.service.test_create_roundtrip import source_tree

PAYLOAD = b"the real content of a\n" * 100
VICTIM = b"must stay as it is\n"


def leftovers(root) -> list[str]:
    """Temporary names a download may have left anywhere under ``root``."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            if name.endswith(".grid-partial") or name.startswith(".grid-download-"):
                found.append(os.path.join(folder, name))
    return found


def test_a_partial_named_symlink_in_the_version_is_not_followed(any_client, tmp_path):
    client = any_client
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_bytes(VICTIM)
    src = tmp_path / "s"
    src.mkdir()
    (src / "a").write_bytes(PAYLOAD)
    os.symlink(str(victim), src / "a.grid-partial")
    client.create(str(src), "ds")
    dest = tmp_path / "d"
    client.download("ds", 1, str(dest))
    assert victim.read_bytes() == VICTIM
    assert not os.path.islink(dest / "a")
    assert (dest / "a").read_bytes() == PAYLOAD
    assert os.readlink(dest / "a.grid-partial") == str(victim)
    assert source_tree(dest) == source_tree(src)


def test_files_named_like_temporary_files_all_arrive(any_client, tmp_path):
    client = any_client
    src = tmp_path / "s"
    src.mkdir()
    for i in range(200):
        (src / f"f{i}").write_bytes(b"plain %d\n" % i)
        (src / f"f{i}.grid-partial").write_bytes(b"partial-named %d\n" % i * 3)
    client.create(str(src), "ds")
    dest = tmp_path / "d"
    report = client.download("ds", 1, str(dest))
    assert report.files == 400
    assert source_tree(dest) == source_tree(src)


@pytest.mark.parametrize("mode", ["force", "resume"])
def test_symlinks_already_in_dest_are_replaced_not_followed(any_client, tmp_path, mode):
    client = any_client
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = [outside / "v1", outside / "v2", outside / "v3"]
    for v in victims:
        v.write_bytes(VICTIM)
    src = tmp_path / "s"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_bytes(PAYLOAD)
    (src / "sub" / "b").write_bytes(PAYLOAD)
    client.create(str(src), "ds")
    dest = tmp_path / "d"
    dest.mkdir()
    os.symlink(str(victims[0]), dest / "a")  # where the version has a file
    os.symlink(str(victims[1]), dest / "a.grid-partial")  # where the old code wrote a's bytes
    os.symlink(str(outside), dest / "sub")  # where the version has a directory
    client.download("ds", 1, str(dest), **{mode: True})
    assert [v.read_bytes() for v in victims] == [VICTIM] * 3
    assert sorted(os.listdir(outside)) == ["v1", "v2", "v3"]
    for rel in ("a", "sub", "sub/b"):
        assert not os.path.islink(dest / rel)
    assert (dest / "a").read_bytes() == PAYLOAD
    assert (dest / "sub" / "b").read_bytes() == PAYLOAD
    assert leftovers(dest) == [str(dest / "a.grid-partial")]  # the user's own link, untouched
    assert os.readlink(dest / "a.grid-partial") == str(victims[1])


def test_a_file_with_a_255_byte_name_downloads(any_client, tmp_path):
    client = any_client
    src = tmp_path / "s"
    src.mkdir()
    name = "n" * 251 + ".bin"
    assert len(name.encode()) == 255
    (src / name).write_bytes(PAYLOAD)
    os.symlink(name, src / ("l" * 255))
    client.create(str(src), "ds")
    dest = tmp_path / "d"
    client.download("ds", 1, str(dest))
    assert source_tree(dest) == source_tree(src)


def test_a_directory_in_the_way_of_a_file_is_an_error_naming_it(any_client, mixed_tree, tmp_path):
    client = any_client
    root, _ = mixed_tree
    client.create(str(root), "ds")
    dest = tmp_path / "d"
    (dest / "val" / "labels.csv").mkdir(parents=True)
    (dest / "val" / "labels.csv" / "mine").write_text("keep")
    with pytest.raises(grid.StorageError) as info:
        client.download("ds", 1, str(dest), force=True)
    assert str(dest / "val" / "labels.csv") in str(info.value)
    assert "directory" in str(info.value)
    assert (dest / "val" / "labels.csv" / "mine").read_text() == "keep"
    assert leftovers(dest) == []


def test_a_file_in_the_way_of_a_folder_is_an_error_naming_it(any_client, mixed_tree, tmp_path):
    client = any_client
    root, _ = mixed_tree
    client.create(str(root), "ds")
    dest = tmp_path / "d"
    (dest / "train").mkdir(parents=True)
    (dest / "train" / "cat").write_text("mine")
    with pytest.raises(grid.StorageError) as info:
        client.download("ds", 1, str(dest), resume=True)
    assert str(dest / "train" / "cat") in str(info.value)
    assert (dest / "train" / "cat").read_text() == "mine"
    assert leftovers(dest) == []


def test_progress_is_reported_as_spans_are_written(client, mixed_tree, tmp_path):
    from grid.service.download import download

    root, files = mixed_tree
    client.create(str(root), "ds")
    seen: list[tuple[int, int]] = []
    report = download(
        client._ctx,  # white box: the client does not take a progress callback
        "ds",
        1,
        str(tmp_path / "d"),
        progress=lambda r: seen.append((r.files, r.bytes)),
    )
    assert len(seen) >= 2  # more than one span: a 6 MiB file and a 6 MiB log
    assert seen == sorted(seen) and seen[-1] == (report.files, report.bytes)
    assert report.files == len(files) and report.bytes == sum(map(len, files.values()))


def test_damaged_data_midway_leaves_no_temporary_files(client, home, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    rng = random.Random(3)
    for i in range(40):
        (src / f"{i:02d}.bin").write_bytes(rng.randbytes(1 << 20))
    client.create(str(src), "ds")
    packs = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(home / "objects" / "local" / "packs") for f in fs
    )
    biggest = max(packs, key=os.path.getsize)
    with open(biggest, "r+b") as f:  # a blob far into the pack: earlier files get written first
        f.seek(os.path.getsize(biggest) * 3 // 4)
        f.write(b"\xff\xfe\xfd\xfc")
    dest = tmp_path / "d"
    with pytest.raises(grid.IntegrityError):
        client.download("ds", 1, str(dest))
    assert leftovers(dest) == []
    done = os.listdir(dest)
    assert done and len(done) < 40  # it failed midway, and no half-written file has a final name
    for name in done:
        assert (dest / name).read_bytes() == (src / name).read_bytes()


def test_memory_stays_bounded_for_a_large_file(client, tmp_path):
    size = 96 << 20
    src = tmp_path / "s"
    src.mkdir()
    rng = random.Random(5)
    with open(src / "big.bin", "wb") as f:
        for _ in range(size >> 20):
            f.write(rng.randbytes(1 << 20))
    client.create(str(src), "ds")
    dest = tmp_path / "d"
    tracemalloc.start()
    try:
        client.download("ds", 1, str(dest))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert os.path.getsize(dest / "big.bin") == size
    assert peak < 64 << 20, f"peak {peak >> 20} MiB while writing a {size >> 20} MiB file"
    with open(src / "big.bin", "rb") as a, open(dest / "big.bin", "rb") as b:
        while chunk := a.read(8 << 20):
            assert b.read(8 << 20) == chunk


def _holes_supported(folder) -> bool:
    """Whether a file seeked over gets a hole here, and written zeros are really stored (a
    file system that turns zeros into holes by itself would make the test meaningless)."""
    probe = os.path.join(folder, "probe")
    with open(probe, "wb") as f:
        f.seek(8 << 20)
        f.write(b"x")
    sparse = os.stat(probe).st_blocks * 512 < 1 << 20
    with open(probe, "wb") as f:
        f.write(bytes(8 << 20))
        f.flush()
        os.fsync(f.fileno())
    dense = os.stat(probe).st_blocks * 512 >= 8 << 20
    os.unlink(probe)
    return sparse and dense


def test_an_all_zero_region_becomes_a_hole(any_client, tmp_path):
    client = any_client
    if not _holes_supported(tmp_path):
        pytest.skip("this file system does not keep holes (or makes them by itself)")
    src = tmp_path / "s"
    src.mkdir()
    rng = random.Random(9)
    content = rng.randbytes(3 << 20) + bytes(8 << 20) + rng.randbytes(3 << 20) + bytes(6 << 20)
    (src / "sparse.bin").write_bytes(content)
    (src / "zeros.bin").write_bytes(bytes(4 << 20))
    client.create(str(src), "ds")
    dest = tmp_path / "d"
    client.download("ds", 1, str(dest))
    assert (dest / "sparse.bin").read_bytes() == content
    assert (dest / "zeros.bin").read_bytes() == bytes(4 << 20)
    st = os.stat(dest / "sparse.bin")
    assert st.st_size == len(content)
    # Chunks are cut by content (at most 4 MiB): the ones at the edges of a zero region hold
    # some data, so at least 4 MiB of the 8 MiB region and 2 MiB of the 6 MiB tail are holes.
    assert st.st_blocks * 512 <= len(content) - (5 << 20), "the zero regions were written out"
    assert os.stat(dest / "zeros.bin").st_blocks * 512 < 1 << 20
    assert source_tree(dest) == source_tree(src)


def test_dest_that_is_a_symlink_to_a_directory_is_written_into(any_client, mixed_tree, tmp_path):
    client = any_client
    root, _ = mixed_tree
    client.create(str(root), "ds")
    real = tmp_path / "other-disk" / "data"
    real.mkdir(parents=True)
    dest = tmp_path / "d"
    os.symlink(str(real), dest)
    client.download("ds", 1, str(dest))
    assert os.path.islink(dest) and os.readlink(dest) == str(real)
    assert source_tree(real) == source_tree(root)


def _run_grid(home, *args):
    from tests.e2e.conftest import GRID

    env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0"}
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root needs setpriv to obey file modes")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    return subprocess.run(
        [*prefix, *GRID, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_an_unwritable_dest_is_named_in_the_error(home, mixed_tree, tmp_path):
    root, _ = mixed_tree
    with grid.Client(str(home)) as c:
        c.create(str(root), "ds")
    dest = tmp_path / "locked"
    dest.mkdir()
    dest.chmod(0o555)
    r = _run_grid(home, "datastore", "download", "ds:1", str(dest))
    assert r.returncode == 7, r.stderr
    assert f"destination {dest}" in r.stderr
    assert "Permission denied" in r.stderr and "Traceback" not in r.stderr
    assert "GRID_HOME" not in r.stderr  # the hint is about the destination, not grid's home
    assert os.listdir(dest) == []


def test_an_unwritable_folder_in_dest_is_named_with_the_file(home, mixed_tree, tmp_path):
    root, _ = mixed_tree
    with grid.Client(str(home)) as c:
        c.create(str(root), "ds")
    dest = tmp_path / "d"
    (dest / "val").mkdir(parents=True)
    (dest / "val").chmod(0o555)
    r = _run_grid(home, "datastore", "download", "ds:1", str(dest), "--force")
    assert r.returncode == 7, r.stderr
    assert f"cannot write {dest / 'val' / 'labels.csv'}" in r.stderr
    assert "Permission denied" in r.stderr and f"destination {dest}" in r.stderr
    assert os.listdir(dest / "val") == []
    assert leftovers(dest) == []


@pytest.fixture
def small_dest(tmp_path):
    with small_tmpfs(tmp_path / "small-dest", "4m") as mnt:
        yield mnt


def test_a_full_dest_names_the_destination_and_leaves_no_temporary_files(
    client, tmp_path, small_dest
):
    src = tmp_path / "s"
    src.mkdir()
    for i in range(8):
        (src / f"{i}.bin").write_bytes(os.urandom(1 << 20))
    client.create(str(src), "ds")
    dest = small_dest / "d"
    with pytest.raises(grid.NoSpaceError) as info:
        client.download("ds", 1, str(dest))
    message = str(info.value)
    assert f"destination {dest}" in message and "GRID_HOME" not in message
    assert re.search(re.escape(str(dest)) + r"/\d\.bin", message)  # and the file
    assert leftovers(small_dest) == []
    for name in os.listdir(dest):  # whatever got a final name is complete
        assert (dest / name).read_bytes() == (src / name).read_bytes()
    assert stat.S_ISDIR(os.stat(dest).st_mode)
