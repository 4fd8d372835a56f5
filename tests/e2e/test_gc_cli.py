"""`grid datastore gc` keeps what is younger than the grace period and says so (issue 11)."""

from __future__ import annotations

import os


def test_gc_keeps_young_objects_until_grace_zero(cli, tmp_path):
    src = tmp_path / "d"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(2 << 20))
    assert cli("datastore", "create", str(src), "--name", "x").code == 0
    assert cli("datastore", "delete", "x", "--yes").code == 0
    r = cli("datastore", "gc")
    assert r.code == 0 and "reclaimed 0 B" in r.out, r.out
    assert "kept 1 unreferenced objects" in r.out and "younger than the grace period" in r.out
    assert "--grace 0" in r.out
    r = cli("datastore", "gc", "--dry-run", "--grace", "0")
    assert r.code == 0 and "would reclaim 2.1 MB" in r.out, r.out
    r = cli("datastore", "gc", "--grace", "0")
    assert r.code == 0 and "reclaimed 2.1 MB" in r.out and "kept" not in r.out, r.out
    for bad in ("soon", "-1h", "١h"):
        r = cli("datastore", "gc", "--grace", bad)
        assert r.code == 2 and "not a duration" in r.err
