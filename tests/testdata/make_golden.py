"""Write a golden store of the running grid's format: ``python -m tests.testdata.make_golden
OUT.tar.gz`` (run from the repository root). Datastore ``golden`` holds two versions: the
golden tree, then ``golden_files_v2``'s. Caches are left out, so a reader rebuilds every
manifest from the stored objects."""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile

import grid
from tests.testdata.golden_tree import write_golden_tree, write_golden_v2


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree, home = os.path.join(tmp, "tree"), os.path.join(tmp, "home")
        write_golden_tree(tree)
        with grid.Client(home, fsync=False) as c:
            c.create(tree, "golden")
            write_golden_v2(tree)
            c.create(tree, "golden")
        with tarfile.open(out, "w:gz") as tar:
            tar.add(home, "home", filter=lambda t: None if "/cache" in t.name else t)


if __name__ == "__main__":
    main(sys.argv[1])
