"""An unchanged re-run copies the previous version's manifest (grid.store.unchanged): it reads no
file and runs no ingest, and any change (an mtime, a mode, an inode, a link, an entry added,
removed or renamed, a lost pack) sends the create down the usual path, walking the tree once,
to the same version a full re-read makes."""

from __future__ import annotations

import os
import shutil

import pytest

import grid.service.create as create_module
from grid.errors import SourceError
from grid.sources.local import LocalSource
from grid.store.index import BlobIndex
from tests.conftest import count_opens

OLD = 1_600_000_000  # older than the racy window: the file state remembers the files


@pytest.fixture
def opened(monkeypatch):
    return count_opens(monkeypatch, LocalSource)


@pytest.fixture
def ingests(monkeypatch):
    """How many creates ran the ingest (the usual path) since the fixture started."""
    calls: list[str] = []
    real = create_module.ingest

    def counting(source, *args, **kwargs):
        calls.append(type(source).__name__)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(create_module, "ingest", counting)
    return calls


@pytest.fixture
def walks(monkeypatch):
    """How many times a local folder was walked from its root."""
    calls: list[str] = []
    real = LocalSource.entries

    def counting(self):
        calls.append(self.root)
        return real(self)

    monkeypatch.setattr(LocalSource, "entries", counting)
    return calls


def _settle(root) -> None:
    for dirpath, dirs, names in os.walk(root):
        for name in names + dirs:
            os.utime(os.path.join(dirpath, name), (OLD, OLD), follow_symlinks=False)
    os.utime(root, (OLD, OLD))


def _tree(root) -> None:
    for i in range(40):
        d = root / f"d{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:03d}.bin").write_bytes(os.urandom(100 + 997 * i))
    (root / "big.bin").write_bytes(os.urandom(3 << 20))  # several chunks
    (root / "empty.txt").write_bytes(b"")
    (root / "emptydir").mkdir()
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "x.txt").write_text("x")
    os.symlink("d0/f000.bin", root / "link")
    os.symlink("/nowhere", root / "dangling")
    _settle(root)


def _listing(client, name, number, path=""):
    out = []
    for info in client.ls(name, number, path):
        out.append((info.path, info.kind, info.size, info.mode, info.mtime_ns, info.target))
        if info.kind == "dir":
            out.extend(_listing(client, name, number, info.path))
    return out


def _same_versions(client, name, a, b) -> None:
    assert _listing(client, name, a) == _listing(client, name, b)
    assert dict(client.iter_files(name, a)) == dict(client.iter_files(name, b))


def _matches_a_full_read(client, src, name, number) -> None:
    """Version ``number`` holds what reading every file of ``src`` again makes."""
    full = client.create(str(src), name, rehash=True)
    _same_versions(client, name, number, full.number)


def test_an_unchanged_rerun_reads_nothing_and_copies_the_tree(
    any_client, tmp_path, opened, ingests, walks
):
    client = any_client
    src = tmp_path / "src"
    _tree(src)
    v1 = client.create(str(src), "d")
    opened.clear()
    ingests.clear()
    walks.clear()
    v2 = client.create(str(src), "d")
    assert opened == [] and ingests == [] and len(walks) == 1
    assert (v2.number, v2.files, v2.size, v2.status) == (2, v1.files, v1.size, "succeeded")
    assert 0 < v2.stored_bytes < 100_000  # its manifest alone
    assert v2.manifest_id != v1.manifest_id
    report = client.diff("d", 1, 2)
    assert (report.added, report.removed, report.modified) == ([], [], [])
    _same_versions(client, "d", 1, 2)
    assert client.verify("d", 2).ok
    # the copy is the new version's own: deleting the old one leaves it whole
    client.delete("d", 1)
    assert client.verify("d", 2).ok
    v3 = client.create(str(src), "d")  # compared with version 2 now
    assert ingests == [] and v3.number == 3
    _same_versions(client, "d", 2, 3)


def test_skip_unchanged_makes_no_version_on_the_fast_path(client, tmp_path, ingests):
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), "d")
    ingests.clear()
    again = client.create(str(src), "d", skip_unchanged=True)
    assert again.number == 1 and ingests == []
    assert [v.number for v in client.versions("d")] == [1]
    assert client.create(str(src), "d").number == 2


def _touch_mtime(src):
    p = src / "d1" / "f004.bin"
    os.utime(p, (OLD + 5, OLD + 5))
    return "d1/f004.bin"


def _chmod(src):
    os.chmod(src / "d2" / "f005.bin", 0o600)
    return "d2/f005.bin"


def _swap_inode(src):
    """Same size, same mtime, new content in a new inode (a rename over the file)."""
    p = src / "d0" / "f003.bin"
    size = p.stat().st_size
    tmp = src / "d0" / "new.tmp"
    tmp.write_bytes(os.urandom(size))
    os.utime(tmp, (OLD, OLD))
    os.rename(tmp, p)
    return "d0/f003.bin"


def _chmod_dir(src):
    os.chmod(src / "deep", 0o700)
    return "deep"


def _touch_dir(src):
    os.utime(src / "emptydir", (OLD + 9, OLD + 9))
    return "emptydir"


def _relink(src):
    os.unlink(src / "link")
    os.symlink("d1/f001.bin", src / "link")
    return "link"


def _add_last(src):
    (src / "zz.txt").write_text("new at the very end of the walk")
    return "zz.txt"


def _add_empty_dir(src):
    (src / "d0" / "aaa").mkdir()
    return "d0/aaa"


def _remove(src):
    os.unlink(src / "d2" / "f008.bin")
    return None


def _remove_last(src):
    shutil.rmtree(src / "emptydir")
    os.unlink(src / "link")
    return None


def _rename(src):
    os.rename(src / "d1" / "f007.bin", src / "d1" / "g007.bin")
    return None


def _grow(src):
    with open(src / "big.bin", "ab") as f:
        f.write(b"more")
    return "big.bin"


@pytest.mark.parametrize(
    "change",
    [
        _touch_mtime,
        _chmod,
        _swap_inode,
        _chmod_dir,
        _touch_dir,
        _relink,
        _add_last,
        _add_empty_dir,
        _remove,
        _remove_last,
        _rename,
        _grow,
    ],
)
def test_any_change_takes_the_usual_path_walking_once(
    client, tmp_path, opened, ingests, walks, change
):
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), "d")
    changed = change(src)
    opened.clear()
    ingests.clear()
    walks.clear()
    v2 = client.create(str(src), "d")
    assert len(ingests) == 1 and len(walks) == 1
    files = {p for p, kind, *_ in _listing(client, "d", 2) if kind == "file"}
    if changed is not None and changed in files:
        info = client.stat("d", 2, changed)
        st = os.lstat(src / changed)
        assert (info.size, info.mode, info.mtime_ns) == (st.st_size, st.st_mode, st.st_mtime_ns)
    # only files whose (size, mtime, inode, ctime) moved are read again
    assert len(opened) <= 1
    if change is _swap_inode:
        assert opened == [str(src / "d0" / "f003.bin")]
        assert client.read_bytes("d", 2, changed) == (src / changed).read_bytes()
    _matches_a_full_read(client, src, "d", v2.number)


def test_a_change_late_in_the_walk_keeps_the_files_before_it_unread(client, tmp_path, opened):
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), "d")
    (src / "deep" / "er" / "x.txt").write_text("y")  # the last regular file of the walk
    os.utime(src / "deep" / "er" / "x.txt", (OLD, OLD))
    opened.clear()
    v2 = client.create(str(src), "d")
    assert opened == [str(src / "deep" / "er" / "x.txt")]
    assert client.read_bytes("d", 2, "deep/er/x.txt") == b"y"
    _matches_a_full_read(client, src, "d", v2.number)


def test_a_lost_pack_is_stored_again(client, home, tmp_path, ingests):
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), "d")
    packs = [
        os.path.join(d, f) for d, _, fs in os.walk(home / "objects") for f in fs if "/packs/" in d
    ]
    os.unlink(packs[0])
    ingests.clear()
    v2 = client.create(str(src), "d")
    assert len(ingests) == 1
    assert client.verify("d", v2.number).ok
    _matches_a_full_read(client, src, "d", v2.number)


def _packs(home) -> set[str]:
    return {f for d, _, fs in os.walk(home / "objects") for f in fs if "/packs/" in d}


def test_the_fast_path_leases_the_packs_it_uses(client, home, tmp_path, monkeypatch, ingests):
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), "d")
    seen: list[tuple[str, list[str]]] = []
    real = BlobIndex.lease

    def lease(self, holder, packs):
        packs = list(packs)
        seen.append((holder, packs))
        return real(self, holder, packs)

    monkeypatch.setattr(BlobIndex, "lease", lease)
    ingests.clear()
    client.create(str(src), "d")
    assert ingests == []
    assert {p for holder, packs in seen if holder == "d:2" for p in packs} == _packs(home)


def test_a_walk_error_during_the_comparison_fails_the_version(client, tmp_path, monkeypatch):
    src = tmp_path / "src"
    _tree(src)
    client.create(str(src), "d")
    real = LocalSource.entries

    def failing(self):
        for i, entry in enumerate(real(self)):
            if i == 10:
                raise SourceError(f"cannot list {self.root}/d1: Permission denied", path="d1")
            yield entry

    monkeypatch.setattr(LocalSource, "entries", failing)
    with pytest.raises(SourceError, match="cannot list"):
        client.create(str(src), "d")
    v2 = client.versions("d")[-1]
    assert (v2.number, v2.status) == (2, "failed") and "cannot list" in (v2.reason or "")
