"""Issue 12.10: progress counts bytes as they are read, not only once a whole file is done."""

from __future__ import annotations

import os


def test_a_large_file_shows_progress_while_it_is_read(client, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(48 << 20))
    seen: list[tuple[int, int]] = []
    v = client.create(str(src), "d", progress=lambda p: seen.append((p.files, p.bytes)))
    during = [b for files, b in seen if files == 0]
    assert during and max(during) >= 16 << 20, seen  # bytes moved before the file was done
    assert seen == sorted(seen)  # never goes back
    assert seen[-1] == (1, 48 << 20) == (v.files, v.size)
