"""What every operation works on: the owner's catalog, store and scratch space."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from grid.catalog import Catalog
from grid.errors import NoSpaceError, StorageError
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
        """Path for a working file; the scratch folder is created on first use.

        Raises:
            StorageError: the folder cannot be created (NoSpaceError when the disk is full).
        """
        try:
            os.makedirs(self.scratch_dir, exist_ok=True)
        except OSError as exc:
            cls = NoSpaceError if exc.errno == errno.ENOSPC else StorageError
            raise cls(f"cannot create {self.scratch_dir}: {exc.strerror}") from exc
        return os.path.join(self.scratch_dir, name)

    def close(self) -> None:
        self.store.close()
        self.catalog.close()
