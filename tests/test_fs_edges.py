"""fsspec `grid://` at its edges, held to what fsspec's MemoryFileSystem does: byte ranges from the
end, ranges that end before they start, delimited blocks (dask's read_csv), and writes of every
kind refused as read-only; and ``Client.open`` seeks like ``io`` files."""

from __future__ import annotations

import errno
import io

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import grid

CSV = b"".join(b"%d,row %d\n" % (i, i) for i in range(2000))
PATH = "grid://t/1/data/rows.csv"


@pytest.fixture
def gfs(home, tmp_path):
    src = tmp_path / "t"
    (src / "data").mkdir(parents=True)
    (src / "data" / "rows.csv").write_bytes(CSV)
    (src / "data" / "empty.txt").write_bytes(b"")
    with grid.Client(str(home)) as c:
        c.create(str(src))
    return fsspec.filesystem("grid", home=str(home), skip_instance_cache=True)


@pytest.fixture
def mem():
    fs = MemoryFileSystem(skip_instance_cache=True)
    fs.store.clear()
    fs.pipe_file("/rows.csv", CSV)
    yield fs
    fs.store.clear()


RANGES = [
    (-10, None),
    (None, -10),
    (10, 5),
    (5, 5),
    (-5, -10),
    (-100_000, 12),
    (len(CSV) + 5, None),
    (3, len(CSV) + 100),
    (100, -100),
    (0, 0),
]


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_cat_file_ranges_match_memory_filesystem(gfs, mem, start, end):
    assert gfs.cat_file(PATH, start, end) == mem.cat_file("/rows.csv", start, end)


def test_cat_file_last_bytes_and_cat_ranges(gfs):
    assert gfs.cat_file(PATH, -10) == CSV[-10:]
    assert gfs.cat_ranges([PATH, PATH], [-8, 2], [None, 6]) == [CSV[-8:], CSV[2:6]]
    assert gfs.tail(PATH, 7) == CSV[-7:]
    assert gfs.cat_file("grid://t/1/data/empty.txt", -3) == b""


def test_read_block_with_a_delimiter_as_dask_reads_csv(gfs, mem):
    for offset, length in ((0, 3), (10, 50), (len(CSV) - 20, 100), (7, None)):
        got = gfs.read_block(PATH, offset, length, delimiter=b"\n")
        assert got == mem.read_block("/rows.csv", offset, length, delimiter=b"\n")
    assert gfs.read_block(PATH, 0, 3, delimiter=b"\n") == b"0,row 0\n"
    with gfs.open(PATH) as f:
        assert f.size == len(CSV)


def _is_read_only(exc: BaseException) -> None:
    assert isinstance(exc, PermissionError) and exc.errno == errno.EROFS
    assert "grid:// is read-only" in str(exc)


@pytest.mark.parametrize(
    "write",
    [
        lambda fs: fs.mkdir("grid://t/1/newdir"),
        lambda fs: fs.makedirs("grid://t/1/a/b/c"),
        lambda fs: fs.makedirs("grid://t/1/data", exist_ok=True),
        lambda fs: fs.mkdirs("grid://t/1/x"),
        lambda fs: fs.rmdir("grid://t/1/data"),
        lambda fs: fs.rm(PATH),
        lambda fs: fs.rm("grid://t/1/data", recursive=True),
        lambda fs: fs.rm_file(PATH),
        lambda fs: fs.mv(PATH, "grid://t/1/moved.csv"),
        lambda fs: fs.cp_file(PATH, "grid://t/1/copy.csv"),
        lambda fs: fs.copy(PATH, "grid://t/1/copy.csv"),
        lambda fs: fs.pipe_file("grid://t/1/new.bin", b"x"),
        lambda fs: fs.pipe({"grid://t/1/new.bin": b"x"}),
        lambda fs: fs.touch("grid://t/1/new.bin"),
        lambda fs: fs.touch(PATH, truncate=False),
        lambda fs: fs.open("grid://t/1/new.bin", "wb"),
        lambda fs: fs.open(PATH, "ab"),
        lambda fs: fs.open(PATH, "r+b"),
        lambda fs: fs.open("grid://t/1/new.txt", "w"),
    ],
    ids=[
        *("mkdir", "makedirs", "makedirs-existing", "mkdirs", "rmdir", "rm", "rm-recursive"),
        *("rm_file", "mv", "cp_file", "copy", "pipe_file", "pipe", "touch", "touch-existing"),
        *("open-wb", "open-ab", "open-r+b", "open-w"),
    ],
)
def test_every_write_is_refused_as_read_only(gfs, write):
    with pytest.raises(PermissionError) as caught:
        write(gfs)
    _is_read_only(caught.value)
    assert gfs.cat_file(PATH) == CSV
    assert sorted(gfs.ls("grid://t/1", detail=False)) == ["t/1/data"]


def test_put_from_local_is_refused(gfs, tmp_path):
    local = tmp_path / "x.txt"
    local.write_bytes(b"x")
    with pytest.raises(PermissionError) as caught:
        gfs.put_file(str(local), "grid://t/1/x.txt")
    _is_read_only(caught.value)


def test_client_open_seeks_like_an_io_file(home, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    (src / "f.bin").write_bytes(b"0123456789")
    with grid.Client(str(home)) as c:
        c.create(str(src))
        with c.open("s", 1, "f.bin") as f, io.BytesIO(b"0123456789") as ref:
            for bad in ((0, 3), (0, -1), (1, 99)):
                with pytest.raises(ValueError):
                    ref.seek(*bad)
                with pytest.raises(ValueError):
                    f.seek(*bad)
            with pytest.raises(ValueError):
                ref.seek(-1)
            for bad in ((-1, io.SEEK_SET), (-11, io.SEEK_END)):  # (BytesIO clamps the second)
                with pytest.raises(ValueError):
                    f.seek(*bad)
            assert f.seek(-3, io.SEEK_END) == 7 and f.read() == b"789"
            assert f.seek(20) == 20 and f.read() == b""
            f.seek(2)
            with pytest.raises(ValueError):
                f.seek(-5, io.SEEK_CUR)
            assert f.tell() == 2 and f.read(2) == b"23"
        raw = c.open("s", 1, "f.bin").detach()
        try:
            with pytest.raises(ValueError):
                raw.seek(0, 3)
            with pytest.raises(ValueError):
                raw.seek(-1)
            assert raw.tell() == 0 and raw.size == 10
        finally:
            raw.close()
