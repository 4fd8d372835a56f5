"""Issue 12, items 2-5: damage found once is never copied into new versions; a version in use
(mounted, open, being read or still being created) is not deleted; an empty SOURCE is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

import grid
from tests.e2e.conftest import GRID


def _packs(home):
    root = os.path.join(home, "objects", "local", "packs")
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("rehash", [True, False])
def test_a_damaged_blob_is_stored_again_by_the_next_create(client, home, tmp_path, rehash):
    src = tmp_path / "d"
    src.mkdir()
    data = os.urandom(50_000)
    (src / "a.bin").write_bytes(data)
    (src / "b.bin").write_bytes(os.urandom(10_000))
    client.create(str(src), "d")
    (pack,) = _packs(home)
    _flip(pack, 100)  # inside a.bin, the first blob
    assert list(client.verify("d", 1).damaged) == ["a.bin"]
    v2 = client.create(str(src), "d", rehash=rehash)
    assert client.verify("d", v2.number).ok  # stored again, not deduplicated into the damage
    assert client.read_bytes("d", v2.number, "a.bin") == data
    assert len(_packs(home)) == 2


@pytest.mark.parametrize("changed", [False, True])
def test_damage_is_not_handed_on_by_files_a_rerun_trusts_without_reading(
    client, home, tmp_path, changed
):
    """Files settled long ago are remembered by the file state, and a re-run trusts them
    without reading (the whole tree when nothing changed, or file by file): once verify has
    found one of their blobs damaged, the next create stores it again."""
    src = tmp_path / "d"
    src.mkdir()
    data = os.urandom(50_000)
    (src / "a.bin").write_bytes(data)
    (src / "b.bin").write_bytes(os.urandom(10_000))
    for name in ("a.bin", "b.bin"):
        os.utime(src / name, (1_600_000_000, 1_600_000_000))
    client.create(str(src), "d")
    (pack,) = _packs(home)
    _flip(pack, 100)  # inside a.bin
    assert list(client.verify("d", 1).damaged) == ["a.bin"]
    if changed:
        (src / "c.bin").write_bytes(b"new")
    v2 = client.create(str(src), "d")
    assert client.verify("d", v2.number).ok
    assert client.read_bytes("d", v2.number, "a.bin") == data
    assert list(client.verify("d", 1).damaged) == ["a.bin"]  # the old version stays as it was


def test_a_version_open_for_reading_is_not_deleted(any_client, tmp_path):
    client = any_client
    src = tmp_path / "d"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(3 << 20))
    client.create(str(src), "d")
    client.create(str(src), "d")
    f = client.open("d", 1, "a.bin")
    stream = client.iter_files("d", 2)
    next(stream)
    for args in (("d", 1), ("d", None), ("d", 2)):
        with pytest.raises(grid.ConflictError, match="is in use"):
            client.delete(*args)
    assert [v.number for v in client.versions("d")] == [1, 2]
    assert f.read() == (src / "a.bin").read_bytes()  # readers carry on unharmed
    f.close()
    client.delete("d", 1)  # closed: now it goes
    with pytest.raises(grid.ConflictError):
        client.delete("d")  # v2's stream is still open
    stream.close()
    client.delete("d")
    assert client.list() == []


def test_a_reader_in_another_process_blocks_delete_and_keep_last(home, tmp_path):
    src = tmp_path / "d"
    src.mkdir()
    (src / "a.bin").write_bytes(b"x" * 1000)
    with grid.Client(str(home)) as c:
        for _ in range(3):
            c.create(str(src), "d")
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import grid,sys,time\n"
            f"f = grid.Client({str(home)!r}).open('d', 1, 'a.bin')\n"
            "print('open', flush=True)\n"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "GRID_HOME": str(home)},
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        warnings: list[str] = []
        with grid.Client(str(home)) as c:
            removed = c.keep_last("d", 1, warn=warnings.append)
            assert [v.number for v in removed] == [2]  # v1 is being read: kept for now
            assert "kept d:1 for now" in warnings[0]
            r = subprocess.run(
                [*GRID, "datastore", "delete", "d:1", "--yes"],
                capture_output=True,
                text=True,
                env={**os.environ, "GRID_HOME": str(home)},
            )
            assert r.returncode == 4 and "d:1 is in use" in r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
    finally:
        reader.kill()
        reader.wait()
    with grid.Client(str(home)) as c:  # the reader died: its lock went with it
        assert [v.number for v in c.keep_last("d", 1)] == [1]


def test_a_datastore_is_not_deleted_while_its_create_runs(home, tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    for i in range(20):
        (src / f"{i:03d}.bin").write_bytes(os.urandom(100_000))
    started, go_on = threading.Event(), threading.Event()

    def progress(_):
        started.set()
        go_on.wait(30)  # the create stays in the middle of its upload until told

    result: list = []
    with grid.Client(str(home)) as writer, grid.Client(str(home)) as other:
        t = threading.Thread(
            target=lambda: result.append(writer.create(str(src), "r", progress=progress))
        )
        t.start()
        assert started.wait(30)
        try:
            for args in (("r",), ("r", 1)):
                with pytest.raises(grid.ConflictError, match="r:1 is still being created"):
                    other.delete(*args)
        finally:
            go_on.set()
            t.join(60)
        assert result and result[0].status == "succeeded"
        assert other.verify("r", 1).ok
        other.delete("r")  # finished: now it may go


@pytest.mark.parametrize("source", ["", "  "])
def test_an_empty_source_is_a_usage_error(home, tmp_path, source):
    env = {**os.environ, "GRID_HOME": str(home)}
    run = lambda *a: subprocess.run([*GRID, *a], capture_output=True, text=True, env=env)  # noqa: E731
    r = run("datastore", "create", source, "--name", "x")
    assert r.returncode == 2 and "SOURCE is empty" in r.stderr
    assert run("datastore", "--json").stdout.strip() == "[]"


def test_a_huge_version_number_from_python_is_not_found(any_client, tmp_path):
    client = any_client
    src = tmp_path / "d"
    src.mkdir()
    (src / "a").write_text("a")
    client.create(str(src), "d")
    for number in (0, -1, 2**63, 10**30):
        with pytest.raises(grid.VersionNotFoundError):
            client.version("d", number)
        with pytest.raises(grid.VersionNotFoundError):
            client.read_bytes("d", number, "a")
