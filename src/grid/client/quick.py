"""The fast read path of the CLI's ``list``, ``show`` and ``ls`` on the embedded installation.

``grid.Client`` opens the catalog with SQLAlchemy, which alone costs about four times the rest
of such a command. ``connect_quick`` answers the same questions with ``sqlite3``
(``grid.catalog.quick_read``) and the store's own readers, the same checks first (settings,
the home's host pin); whatever it cannot answer (logged in to a server, storage elsewhere than
``GRID_HOME/objects``, a catalog to create or migrate, an ``OWNER/NAME``) goes to the client
``connect()`` makes, so results and errors never differ.
"""

from __future__ import annotations

import builtins
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grid.catalog.quick_read import QuickCatalog
    from grid.client.interface import DatastoreClient
    from grid.records import DatastoreInfo, FileInfo, RunInfo, VersionInfo
    from grid.reports import UsageReport
    from grid.settings import Settings


class QuickReader:
    """``list``, ``versions``, ``version``, ``ls`` (and ``parse_ref``) of the embedded
    installation, read without SQLAlchemy; anything else goes to the normal client."""

    def __init__(
        self, home: str, settings: Settings, catalog: QuickCatalog, cache_size: int | None = None
    ) -> None:
        self.home = home
        self._cache_size = cache_size
        self._settings = settings
        self._catalog = catalog
        self._client: DatastoreClient | None = None
        self._store: Any = None

    def _real(self) -> DatastoreClient:
        if self._client is None:
            from grid.client.client import Client

            self._client = Client(self.home, cache_size=self._cache_size)
        return self._client

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, int | None]:
        """Split ``NAME[:VERSION]`` (as every client does)."""
        from grid.service.names import parse_ref

        return parse_ref(ref)

    def list(self) -> builtins.list[DatastoreInfo]:
        """Every datastore with its latest version."""
        from grid.catalog.quick_read import Unsure

        try:
            return self._catalog.datastores()
        except Unsure:
            return self._real().list()

    def versions(self, name: str) -> builtins.list[VersionInfo]:
        """All versions of ``name``, oldest first."""
        from grid.catalog.quick_read import Unsure

        if "/" not in name:  # OWNER/NAME: the client says why not
            try:
                return self._catalog.versions(name)
            except Unsure:
                pass
        return self._real().versions(name)

    def version(self, name: str, version: int) -> VersionInfo:
        """One version of ``name``."""
        from grid.catalog.quick_read import Unsure

        if "/" not in name:
            try:
                return self._catalog.version(name, version)
            except Unsure:
                pass
        return self._real().version(name, version)

    def usage(self) -> UsageReport:
        """Where the store's bytes go (read with the quick catalog; a kept report is reused)."""
        from grid.catalog.quick_read import Unsure
        from grid.service import usage

        try:
            return usage.usage(self._context())
        except Unsure:
            return self._real().usage()

    def version_runs(self, name: str, version: int) -> builtins.list[RunInfo]:
        """The runs and sessions that attached ``name:version`` (from the normal client)."""
        return self._real().version_runs(name, version)

    def ls(self, name: str, version: int | None = None, path: str = "") -> builtins.list[FileInfo]:
        """Entries of directory ``path`` of a succeeded version (default: the latest)."""
        from grid.catalog.quick_read import Unsure

        if "/" not in name:
            from grid.service import browse

            try:
                return browse.list_dir(self._context(), name, version, path)[1]
            except Unsure:
                pass
        return self._real().ls(name, version, path)

    def snapshot(self, name: str, version: int | None = None) -> Any:
        """A succeeded version opened for random access by entry id (the FUSE mount); it
        reads through this reader's store: close it before this reader."""
        from grid.catalog.quick_read import Unsure

        if "/" not in name:
            from grid.service.snapshot import open_snapshot

            try:
                return open_snapshot(self._context(), name, version)
            except Unsure:
                pass
        return self._real().snapshot(name, version)

    def _context(self) -> Any:
        """A service context on the quick catalog and the installation's store, as
        ``grid.Client`` builds it for local objects."""
        from grid.objects import LocalDirectory
        from grid.service.context import Context
        from grid.store import Store

        s, owner = self._settings, self._settings.owner
        if self._store is None:
            self._store = Store(
                LocalDirectory(os.path.join(self.home, "objects", owner), durable=s.fsync),
                os.path.join(self.home, "index", f"{owner}.sqlite"),
                os.path.join(self.home, "cache", owner),
                cache_limit=(s.cache_size or 0) if self._cache_size is None else self._cache_size,
            )
        return Context(
            self._catalog,  # type: ignore[arg-type]  # reads only: datastores, version(s)
            self._store,
            os.path.join(self.home, "tmp"),
            storage=os.path.join(self.home, "objects"),
            home=self.home,
            host_id=s.host_id,
            lease_seconds=s.lease_seconds,
            gc_grace=s.gc_grace,
        )

    def close(self) -> None:
        """Release the catalog, the store and the normal client if one was made."""
        self._catalog.close()
        if self._store is not None:
            self._store.close()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> QuickReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_quick(home: str | None = None, cache_size: int | None = None) -> QuickReader | None:
    """A ``QuickReader`` of the embedded installation ``connect(home, cache_size=...)`` would
    open, or None
    where that one must be used: logged in to a server, storage elsewhere, no catalog yet or
    one to migrate. Checks and errors are ``grid.Client``'s (settings, the home's host pin)."""
    from grid.client.credentials import load

    if load() is not None:
        return None
    from grid.settings import Settings

    settings = Settings.from_env()
    if settings.storage_url:
        return None
    home = os.path.abspath(home or settings.home)
    if not os.path.isdir(home):
        return None  # the client creates it
    from grid.catalog.quick_read import open_quick
    from grid.service.home_guard import check_home

    check_home(home, settings.host_id, settings.network_fs)
    catalog = open_quick(os.path.join(home, "catalog.db"), settings.owner)
    return None if catalog is None else QuickReader(home, settings, catalog, cache_size)
