"""Real FUSE mounts at awkward mountpoints (a tab, a backslash, a newline: /proc/mounts escapes
them as octal), `unmount --all` that goes on past a mount it cannot unmount, and `df -i`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from grid.errors import ConflictError
from tests.e2e.conftest import GRID

pytestmark = pytest.mark.fuse
if shutil.which("fusermount3") is None:
    pytest.skip("no fusermount3 here (apt-get install fuse3)", allow_module_level=True)
if not os.path.exists("/dev/fuse"):
    pytest.skip("no /dev/fuse here", allow_module_level=True)

from grid.mount import runner  # noqa: E402

AWKWARD = {
    "tab": "with\ttab",
    "backslash": "back\\slash",
    "newline": "new\nline",
    "all": "a \\\t\nz",
}


def _mine(tmp_path) -> list[str]:
    return [mp for mp in runner.mounted() if mp.startswith(str(tmp_path))]


@pytest.fixture
def run(home, tmp_path):
    env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0"}

    def run(*args):
        return subprocess.run([*GRID, *args], capture_output=True, text=True, env=env, timeout=60)

    yield run
    for mp in sorted(_mine(tmp_path), reverse=True):
        subprocess.run(["fusermount3", "-u", "-z", mp], check=False)


@pytest.fixture
def version(run, tmp_path):
    src = tmp_path / "src"
    (src / "d" / "e").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "d" / "b.txt").write_text("b")
    (src / "d" / "e" / "c.bin").write_bytes(b"c" * 5000)
    (src / "empty").mkdir()
    (src / "link").symlink_to("d/b.txt")
    r = run("datastore", "create", str(src), "--name", "s")
    assert r.returncode == 0, r.stderr
    return src


@pytest.mark.parametrize("kind", list(AWKWARD))
def test_unmount_a_mountpoint_with_escaped_characters(run, version, tmp_path, kind):
    mp = str(tmp_path / AWKWARD[kind])
    r = run("datastore", "mount", "s:1", mp)
    assert r.returncode == 0, r.stderr
    assert mp in runner.mounted(), "/proc/mounts' octal escapes are decoded"
    assert os.listdir(mp)
    r = run("datastore", "unmount", mp)
    assert r.returncode == 0, r.stderr
    assert mp not in runner.mounted() and os.listdir(mp) == []


def test_unmount_all_goes_on_past_a_failure_and_names_it(run, version, tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("shadowing a mount needs root")
    shadowed = tmp_path / "a-shadowed"
    points = [str(shadowed / "mnt"), str(tmp_path / "b\ttab"), str(tmp_path / "c\\slash")]
    for mp in points:
        r = run("datastore", "mount", "s:1", mp)
        assert r.returncode == 0, r.stderr
    # a folder mounted over the first mount's parent hides it: fusermount3 cannot reach it
    subprocess.run(["mount", "-t", "tmpfs", "shadow", str(shadowed)], check=True)
    try:
        # only this test's mounts: others may run on this machine at the same time
        real = runner.mounted
        monkeypatch.setattr(
            runner,
            "mounted",
            lambda: {k: v for k, v in real().items() if k.startswith(str(tmp_path))},
        )
        seen: list[str] = []
        with pytest.raises(ConflictError) as caught:
            runner.unmount_all(seen.append)
        assert seen == points[1:], "every mount after the failing one is tried"
        assert "could not unmount 1 of 3" in str(caught.value)
        assert points[0] in str(caught.value)
        assert _mine(tmp_path) == [points[0]]
    finally:
        subprocess.run(["umount", str(shadowed)], check=False)
    assert runner.unmount_all() == [points[0]]
    assert _mine(tmp_path) == []


def test_statfs_counts_every_entry_as_an_inode(run, version, tmp_path):
    mp = tmp_path / "mnt"
    assert run("datastore", "mount", "s:1", str(mp)).returncode == 0
    entries = 0
    for _folder, dirs, files in os.walk(mp):
        entries += len(dirs) + len(files)  # a symlink to a file is listed with the files
    assert entries == 7  # a.txt d d/b.txt d/e d/e/c.bin empty link; and the root
    st = os.statvfs(mp)
    assert st.f_files == entries + 1 and st.f_ffree == 0
    df = subprocess.run(["df", "--output=iused", str(mp)], capture_output=True, text=True)
    assert df.stdout.split()[-1] == str(entries + 1)
    assert run("datastore", "unmount", str(mp)).returncode == 0


def test_inode_count_is_exact_for_any_number_of_entries():
    from grid.errors import PathNotFoundError
    from grid.mount.operations import GridOperations

    class Snap:
        def __init__(self, n: int) -> None:
            self.n = n

        def entry(self, entry_id: int) -> object:
            if not 0 <= entry_id <= self.n:
                raise PathNotFoundError(f"no entry {entry_id}", path=str(entry_id))
            return object()

    for n in [*range(70), 1000, 1023, 1024, 1025, 123_457]:
        ops = GridOperations(lambda n=n: Snap(n))  # type: ignore[arg-type,return-value]
        assert ops._count_inodes() == n + 1, n
