"""Issue 13.8: a folder of ordinary files never fails on a timestamp. Times beyond what a
signed 64-bit nanosecond count holds (years 1677-2262) are stored clamped."""

from __future__ import annotations

import os

LATE = 10_413_792_000 * 10**9  # 2300-01-01, past 2**63 ns
EARLY = -11_676_096_000 * 10**9  # 1600-01-01


def test_files_dated_2300_and_1600_are_stored_clamped(client, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "late.txt").write_text("late")
    (src / "sub" / "early.txt").write_text("early")
    os.utime(src / "late.txt", ns=(LATE, LATE))
    os.utime(src / "sub" / "early.txt", ns=(EARLY, EARLY))
    os.utime(src / "sub", ns=(LATE, LATE))
    v = client.create(str(src), "t")
    assert v.status == "succeeded"
    times = {f.path: f.mtime_ns for f in client.ls("t", 1)} | {
        f.path: f.mtime_ns for f in client.ls("t", 1, "sub")
    }
    assert times["late.txt"] == times["sub"] == 2**63 - 1
    # the filesystem may clamp 1600 itself (ext4 and tmpfs keep 1901 at the earliest)
    assert times["sub/early.txt"] == max((src / "sub" / "early.txt").stat().st_mtime_ns, -(2**63))
    assert client.read_bytes("t", 1, "late.txt") == b"late"
    again = client.create(str(src), "t", skip_unchanged=True)  # stable: nothing changed
    assert again.number == 1
    client.download("t", 1, str(tmp_path / "out"))
    assert (tmp_path / "out" / "late.txt").stat().st_mtime_ns == 2**63 - 1
