"""The object store failing in the middle of an upload."""

from __future__ import annotations

import os

import pytest

from grid.catalog import Catalog
from grid.errors import StorageError, VersionNotReadyError
from grid.objects import LocalDirectory
from grid.objects.faulty import FaultyStore
from grid.service import browse, create
from grid.service.context import Context
from grid.store import Store


def _context(tmp_path, fail_put_after=None):
    objects = FaultyStore(
        LocalDirectory(tmp_path / "objects", durable=False), fail_put_after=fail_put_after
    )
    ctx = Context(
        Catalog(f"sqlite:///{tmp_path / 'catalog.db'}"),
        Store(objects, str(tmp_path / "index.sqlite"), str(tmp_path / "cache")),
        str(tmp_path / "tmp"),
    )
    return ctx, objects


def _tree(root, n_mib=100):
    root.mkdir()
    for i in range(n_mib):
        (root / f"{i:03d}.bin").write_bytes(os.urandom(1 << 20))


def test_failed_put_fails_the_version_and_a_rerun_reuses_stored_packs(tmp_path):
    src = tmp_path / "src"
    _tree(src)
    ctx, _objects = _context(tmp_path, fail_put_after=1)
    with pytest.raises(StorageError, match="injected fault"):
        create.create(ctx, str(src), "ds")
    (v1,) = ctx.catalog.versions("ds")
    assert v1.status == "failed" and "injected fault" in v1.reason
    with pytest.raises(VersionNotReadyError):
        browse.list_dir(ctx, "ds", 1)
    ctx.close()

    ctx, _objects = _context(tmp_path)
    v2 = create.create(ctx, str(src), "ds")
    assert v2.number == 2 and v2.status == "succeeded"
    # the pack stored before the fault (32 MiB+) was not stored again
    assert v2.stored_bytes < v2.size - (30 << 20)
    for name in ("000.bin", "099.bin"):
        assert b"".join(browse.read_file(ctx, "ds", 2, name)) == (src / name).read_bytes()
    ctx.close()
