"""What every operation works on: the owner's catalog, store and scratch space."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from grid.errors import storage_error
from grid.service.catalog_port import CatalogPort
from grid.store import Store


@dataclass
class Context:
    """An opened installation, as seen by one owner.

    ``scratch_dir`` holds small working files (manifests being built), never dataset bytes
    (but a zip from a server without Range support is spooled there). ``allow_private_urls``:
    archive URLs may point to loopback, private or link-local addresses (embedded mode, which
    runs as the user; a server refuses them unless configured). ``storage`` names where the
    objects live and ``home`` the installation, for messages. ``host_id`` names this machine
    in leases and claims; ``lease_seconds`` is how long a create's hold on its version lasts
    unrenewed; ``gc_grace`` is how old (seconds) an unreferenced object must be before gc
    deletes it. ``server_checked``: a team-mode server owns the storage (the catalog is
    remote): it claims the storage and checks every upload at commit, not this process.
    ``on_held``: called once a create holds its version (its lease is in the catalog): a
    team-mode create learns there which packs its owner stores, since a gc drops none while
    a create holds a lease.
    """

    catalog: CatalogPort
    store: Store
    scratch_dir: str
    allow_private_urls: bool = True
    storage: str = ""
    home: str = ""
    host_id: str = ""
    lease_seconds: float = 60.0
    gc_grace: float = 24 * 3600.0
    server_checked: bool = False
    on_held: Callable[[], None] | None = None

    def scratch_path(self, name: str) -> str:
        """Path for a working file; the scratch folder is created on first use.

        Raises:
            StorageError: the folder cannot be created (NoSpaceError when the disk is full).
        """
        try:
            os.makedirs(self.scratch_dir, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"create {self.scratch_dir}") from exc
        return os.path.join(self.scratch_dir, name)

    def close(self) -> None:
        self.store.close()
        self.catalog.close()
