"""Sources that change under us, and grid's own storage inside the source."""

from __future__ import annotations

import os

import grid
from grid.sources import LocalSource
from grid.store import ManifestWriter
from grid.store.ingest import ingest


class DeletingSource(LocalSource):
    """Deletes chosen files right after listing them, before anyone reads them."""

    def __init__(self, root, doomed, warn):
        super().__init__(root, warn)
        self.doomed = doomed

    def entries(self):
        for entry in super().entries():
            if entry.name in self.doomed:
                os.unlink(entry.location)
            yield entry


def test_files_deleted_after_listing_are_left_out_with_a_warning(client, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_text("keep")
    (src / "small.bin").write_bytes(os.urandom(5000))
    (src / "large.bin").write_bytes(os.urandom(3 << 20))  # the chunked path
    warnings: list[str] = []
    store = client._ctx.store
    manifest = ManifestWriter(str(tmp_path / "m.sqlite"))
    source = DeletingSource(str(src), {"small.bin", "large.bin"}, warnings.append)
    stats = ingest(source, store, manifest, warn=warnings.append)
    manifest.finish({})
    assert stats.files == 1
    assert sorted(w.split(":")[0].rsplit("/", 1)[-1] for w in warnings) == [
        "large.bin",
        "small.bin",
    ]


def test_grid_home_inside_the_source_is_not_stored(tmp_path):
    src = tmp_path / "home_dir"
    src.mkdir()
    (src / "data.txt").write_text("mine")
    warnings: list[str] = []
    with grid.Client(str(src / ".grid"), fsync=False) as c:
        c.create(str(src), "home", warn=warnings.append)
        c.create(str(src), "home", warn=warnings.append)  # now .grid holds packs: still skipped
        assert [f.path for f in c.ls("home", 2)] == ["data.txt"]
    assert any(".grid" in w for w in warnings)
