"""diff on a known change set, through the client and the CLI."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def two_versions(client, tmp_path):
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep" / "same.txt").write_text("same")
    (src / "keep" / "edit.txt").write_text("before")
    (src / "gone.txt").write_text("bye!")
    (src / "gone_dir").mkdir()
    (src / "gone_dir" / "x").write_text("x")
    (src / "script.sh").write_text("echo")
    os.symlink("keep/same.txt", src / "link")
    client.create(str(src), name="d")
    (src / "keep" / "edit.txt").write_text("after, longer")
    (src / "gone.txt").unlink()
    (src / "gone_dir" / "x").unlink()
    (src / "gone_dir").rmdir()
    (src / "new").mkdir()
    (src / "new" / "file.bin").write_bytes(b"\0" * 1000)
    os.chmod(src / "script.sh", 0o755)
    os.unlink(src / "link")
    os.symlink("keep/edit.txt", src / "link")
    os.utime(src / "keep" / "same.txt", (1, 1))  # mtime only: not a change
    client.create(str(src), name="d")
    return src


def test_diff_names_each_change(client, two_versions):
    r = client.diff("d", 1, 2)
    assert (r.a, r.b) == (1, 2)
    assert [(c.path, c.kind, c.new_size) for c in r.added] == [
        ("new", "dir", 0),
        ("new/file.bin", "file", 1000),
    ]
    assert [(c.path, c.old_size) for c in r.removed] == [
        ("gone.txt", 4),
        ("gone_dir", 0),
        ("gone_dir/x", 1),
    ]
    assert [(c.path, c.old_size, c.new_size) for c in r.modified] == [
        ("keep/edit.txt", 6, 13),
        ("link", 13, 13),
        ("script.sh", 4, 4),
    ]
    assert r.added_bytes == 1000 and r.removed_bytes == 5
    same = client.diff("d", 2, 2)
    assert not (same.added or same.removed or same.modified)
    back = client.diff("d", 2, 1)
    assert [c.path for c in back.added] == [c.path for c in r.removed]


def test_diff_cli_text_and_json(cli, home, two_versions):
    out = cli("datastore", "diff", "d:1", "d:2")
    assert out.code == 0
    lines = out.out.splitlines()
    assert "+ new/file.bin  1.0 kB" in lines
    assert "- gone.txt  4 B" in lines
    assert "M keep/edit.txt  13 B" in lines
    assert lines[-1].startswith("d:1 -> d:2: 2 added (1.0 kB), 3 removed (5 B), 3 modified")
    data = json.loads(cli("datastore", "diff", "d:1", "d:2", "--json").out)
    assert [c["path"] for c in data["modified"]] == ["keep/edit.txt", "link", "script.sh"]


def test_diff_bad_input_is_one_line(cli, two_versions):
    for args, code, needle in (
        (("d:1", "e:1"), 2, "different datastores"),
        (("d:1", "d:9"), 3, "no version 9"),
        (("nosuch:1", "nosuch:2"), 3, "no datastore"),
    ):
        r = cli("datastore", "diff", *args)
        assert r.code == code and needle in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) == 1
