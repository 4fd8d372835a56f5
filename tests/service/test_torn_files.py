"""Issue 12.7: a file rewritten while create reads it is never silently stored torn. A small
file is read again until a read sees it unchanged; a large one (read once, in chunks) is
stored with a warning naming it."""

from __future__ import annotations

import os

from grid.sources import LocalSource


class _Writer:
    """A file object that appends to its file on disk after its first ``times`` reads, as a
    program writing the file at the same time would."""

    def __init__(self, f, path: str, times: int) -> None:
        self._f, self._path, self._times = f, path, times

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def _touch(self) -> None:
        if self._times > 0:
            self._times -= 1
            with open(self._path, "ab") as w:
                w.write(b"NEW")

    def read(self, *args):
        data = self._f.read(*args)
        self._touch()
        return data

    def readinto(self, view):
        n = self._f.readinto(view)
        self._touch()
        return n


def _rewrite_during_reads(monkeypatch, name: str, opens: int, reads: int) -> list[str]:
    """Make the first ``opens`` opens of ``name`` append during their first ``reads`` reads
    (through the file object, or a ``preadv`` on its descriptor: a cached small file is read
    that way)."""
    left = [opens]
    original, real_preadv = LocalSource.open, os.preadv
    writers: dict[int, _Writer] = {}

    def open_(self, entry):
        f = original(self, entry)
        if entry.name == name and left[0] > 0:
            left[0] -= 1
            writers[f.fileno()] = _Writer(f, entry.location, reads)
            return writers[f.fileno()]
        writers.pop(f.fileno(), None)
        return f

    def preadv(fd, buffers, offset, *flags):
        n = real_preadv(fd, buffers, offset, *flags)
        writer = writers.get(fd)
        if writer is not None and not writer._f.closed:
            writer._touch()
        return n

    monkeypatch.setattr(LocalSource, "open", open_)
    monkeypatch.setattr(os, "preadv", preadv)
    return []


def _source(tmp_path, name: str, size: int):
    src = tmp_path / "src"
    src.mkdir()
    path = src / name
    path.write_bytes(os.urandom(size))
    os.utime(path, (1_600_000_000, 1_600_000_000))  # an old mtime: any write moves it
    return src, path


def test_a_small_file_changed_while_read_is_read_again(client, tmp_path, monkeypatch):
    src, path = _source(tmp_path, "log.txt", 50_000)
    _rewrite_during_reads(monkeypatch, "log.txt", opens=1, reads=1)
    warnings: list[str] = []
    v = client.create(str(src), "d", warn=warnings.append)
    assert client.read_bytes("d", v.number, "log.txt") == path.read_bytes()  # the new content
    assert warnings == []


def test_a_small_file_that_keeps_changing_is_named(client, tmp_path, monkeypatch):
    src, _path = _source(tmp_path, "log.txt", 50_000)
    _rewrite_during_reads(monkeypatch, "log.txt", opens=10, reads=1)
    warnings: list[str] = []
    client.create(str(src), "d", warn=warnings.append)
    assert len(warnings) == 1 and "log.txt changed while it was read" in warnings[0]


def test_a_large_file_changed_while_read_is_named(client, tmp_path, monkeypatch):
    src, _path = _source(tmp_path, "big.bin", 20 << 20)
    _rewrite_during_reads(monkeypatch, "big.bin", opens=1, reads=1)
    warnings: list[str] = []
    client.create(str(src), "d", warn=warnings.append)
    assert len(warnings) == 1 and "big.bin changed while it was read" in warnings[0]
    assert "create again once it is complete" in warnings[0]
