"""What every operation works on: the owner's catalog, store and scratch space."""

from __future__ import annotations

import os
from dataclasses import dataclass

from grid.catalog import Catalog
from grid.store import Store


@dataclass
class Context:
    """An opened installation, as seen by one owner.

    ``scratch_dir`` holds small working files (manifests being built), never dataset bytes.
    """

    catalog: Catalog
    store: Store
    scratch_dir: str

    def scratch_path(self, name: str) -> str:
        os.makedirs(self.scratch_dir, exist_ok=True)
        return os.path.join(self.scratch_dir, name)

    def close(self) -> None:
        self.store.close()
        self.catalog.close()
