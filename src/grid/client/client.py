"""``grid.Client``: every datastore operation, in-process on the embedded installation.

>>> import grid
>>> client = grid.Client()              # ~/.grid, or $GRID_HOME
>>> v = client.create("my_dataset")     # VersionInfo(datastore='my_dataset', number=1, ...)
>>> client.read_bytes("my_dataset", 1, "train/a.jpg")
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from grid.client.service_client import REMOTE_CACHE, ServiceClient, file_tag
from grid.errors import InvalidNameError, UsageError, storage_error
from grid.objects import LocalDirectory, ObjectStore
from grid.objects.urls import open_url
from grid.records import JobInfo, Lease, VersionInfo
from grid.service.catalog_port import CatalogPort, Stopped
from grid.service.context import Context
from grid.service.home_guard import check_home
from grid.service.names import NAME_RULE
from grid.settings import Settings
from grid.store import Store

if TYPE_CHECKING:
    from grid.catalog import Catalog
    from grid.catalog.jobs import JobQueue
    from grid.catalog.quick_write import QuickWriter
    from grid.service.runs import RunPort

T = TypeVar("T")


class Client(ServiceClient):
    """Access to the datastores of one owner.

    Args:
        home: embedded installation root; default ``$GRID_HOME`` or ``~/.grid``.
        fsync: make stored objects durable before a version succeeds (default from
            ``GRID_FSYNC``, on).
        owner: owner name (default ``local``).
        cache_size: bytes of verified blobs kept on disk for random reads (mounts, ``open``),
            shared by every process using this installation; default ``GRID_CACHE_SIZE``, or
            none for the local object directory and 10 GiB for remote storage.
        storage_url: ``s3://bucket/prefix`` to keep packs and manifests in an S3-compatible
            store, or ``file:///path`` for a folder (default ``GRID_STORAGE_URL``, else
            ``GRID_HOME/objects``). The first installation to write a storage claims it; any
            other is refused (``StorageClaimedError``).
        gc_grace: seconds an unreferenced object must have existed before gc deletes it
            (default ``GRID_GC_GRACE``, 24 h).
    """

    def __init__(
        self,
        home: str | None = None,
        *,
        fsync: bool | None = None,
        owner: str | None = None,
        cache_size: int | None = None,
        storage_url: str | None = None,
        allow_private_urls: bool = True,
        gc_grace: float | None = None,
    ) -> None:
        settings = Settings.from_env()
        self._limit_settings = (
            settings.archive_max_size,
            settings.archive_max_files,
            settings.archive_max_ratio,
        )
        self.home = os.path.abspath(home or settings.home)
        owner = owner or settings.owner
        fsync = settings.fsync if fsync is None else fsync
        try:
            os.makedirs(self.home, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"create GRID_HOME {self.home}") from exc
        check_home(self.home, settings.host_id, settings.network_fs)
        url = storage_url or settings.storage_url
        objects, remote = self._objects(url, owner, fsync)
        if cache_size is None:
            cache_size = settings.cache_size
        if cache_size is None:
            cache_size = REMOTE_CACHE if remote else 0
        # Local state is kept per storage: the catalog, index, caches and file state of one
        # storage never mix with another's.
        tag = owner if not remote else f"{owner}-{file_tag(url)}"
        db = "catalog.db" if not remote else f"catalog-{file_tag(url)}.db"
        catalog = LazyCatalog(os.path.join(self.home, db), owner)
        store = Store(
            objects,
            os.path.join(self.home, "index", f"{tag}.sqlite"),
            os.path.join(self.home, "cache", tag),
            cache_limit=cache_size,
            state_path=os.path.join(self.home, "state", f"{tag}.sqlite"),
        )
        self._ctx = Context(
            cast(CatalogPort, catalog),
            store,
            os.path.join(self.home, "tmp"),
            allow_private_urls,
            storage=f"{url.rstrip('/')}/{owner}" if url else os.path.join(self.home, "objects"),
            home=self.home,
            host_id=settings.host_id,
            lease_seconds=settings.lease_seconds,
            gc_grace=settings.gc_grace if gc_grace is None else gc_grace,
        )

        self._catalog = catalog
        self._runs: RunPort | None = None

    @property
    def runs(self) -> RunPort:
        """The runs and sessions of this installation."""
        if self._runs is None:
            from grid.catalog.runs import RunRegistry
            from grid.service.runs import LocalRuns

            catalog = self._catalog.opened()
            self._runs = LocalRuns(RunRegistry(catalog), catalog.owner_id)
        return self._runs

    def _jobs(self) -> tuple[JobQueue, list[int]]:
        from grid.catalog.jobs import JobQueue

        catalog = self._catalog.opened()
        return JobQueue(catalog), [catalog.owner_id]

    def jobs(self, limit: int = 1000) -> builtins.list[JobInfo]:
        """The jobs of this installation's catalog (none: it runs its work itself)."""
        queue, owners = self._jobs()
        return queue.list(owners, limit)

    def job(self, job_id: int) -> JobInfo:
        """One job of this installation's catalog."""
        queue, owners = self._jobs()
        return queue.get(job_id, owners)

    def cancel_job(self, job_id: int) -> JobInfo:
        """Cancel a job of this installation's catalog."""
        queue, owners = self._jobs()
        return queue.cancel(job_id, owners)

    def close(self) -> None:
        """Release database connections."""
        self._ctx.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _objects(self, url: str | None, owner: str, fsync: bool) -> tuple[ObjectStore, bool]:
        if not url:
            return LocalDirectory(os.path.join(self.home, "objects", owner), durable=fsync), False
        objects = open_url(url, owner, durable=fsync)
        if objects is None:
            raise UsageError(
                f"unsupported storage URL {url!r}",
                rule="GRID_STORAGE_URL is s3://bucket[/prefix] or file:///folder (or unset for "
                "GRID_HOME/objects)",
            )
        return objects, url.startswith("s3://")

    def _open(self, name: str | None) -> tuple[Context, str | None, str]:
        if name is not None and "/" in name:
            raise InvalidNameError(
                f"{name!r} names another owner's datastore: that needs team mode "
                "(grid login --username U --key K --url URL)",
                rule=f"{NAME_RULE}; OWNER/NAME only when logged in to a grid server",
            )
        return self._ctx, name, ""


class LazyCatalog:
    """The embedded catalog, opened (``grid.catalog.Catalog``) on first use.

    Opening it imports SQLAlchemy and checks the schema: about 0.3 s, as long as an unchanged
    re-run of a create or reading a small version back. Until something needs it, the calls
    of a reader (``version``, ``versions``) and of a create (``catalog_id``, ``new_version``,
    ``resume_version``, ``renew``, ``set_status``, ``set_progress``, ``discard_version``,
    ``fail_abandoned``) go to the SQLite file through ``grid.catalog.quick_write``, which makes
    the catalog's own transactions, rows and errors; where it is unsure (no catalog yet, another
    schema, an unexpected value) the catalog is opened, and so it is for every other call
    (``Catalog``'s own, through ``__getattr__``). Thread-safe.
    """

    def __init__(self, path: str, owner: str) -> None:
        self._path = path
        self._owner = owner
        self._catalog: Catalog | None = None
        self._quick: QuickWriter | None = None
        self._tried_quick = False
        self._lock = threading.Lock()

    def opened(self) -> Catalog:
        """The catalog, opened now if it was not (created or migrated if need be)."""
        with self._lock:
            if self._catalog is None:
                from grid.catalog import Catalog

                self._catalog = Catalog(f"sqlite:///{self._path}", self._owner)
                if self._quick is not None:
                    self._quick.close()
                    self._quick = None
            return self._catalog

    def _quick_writer(self) -> QuickWriter | None:
        """The sqlite3 catalog while the catalog is not open (None where it cannot serve)."""
        with self._lock:
            if self._catalog is None and not self._tried_quick:
                from grid.catalog.quick_read import open_quick
                from grid.catalog.quick_write import QuickWriter

                self._tried_quick = True
                quick = open_quick(self._path, self._owner, QuickWriter)
                self._quick = cast("QuickWriter | None", quick)
            return self._quick if self._catalog is None else None

    def _either(self, call: Callable[[QuickWriter | Catalog], T]) -> T:
        """``call`` on the sqlite3 catalog if it can answer, else on the catalog."""
        quick = self._quick_writer()
        if quick is not None:
            from grid.catalog.quick_read import Unsure

            try:
                return call(quick)
            except Unsure:  # nothing was written: the catalog answers instead
                pass
        return call(self.opened())

    @property
    def catalog_id(self) -> str:
        return self._either(lambda c: c.catalog_id)

    def version(self, name: str, number: int) -> VersionInfo:
        return self._either(lambda c: c.version(name, number))

    def versions(self, name: str) -> builtins.list[VersionInfo]:
        return self._either(lambda c: c.versions(name))

    def new_version(self, name: str, source: str, manifest_id: str, lease: Lease) -> VersionInfo:
        return self._either(lambda c: c.new_version(name, source, manifest_id, lease))

    def resume_version(
        self, name: str, source: str, manifest_id: str, lease: Lease, stopped: Stopped
    ) -> VersionInfo | None:
        return self._either(lambda c: c.resume_version(name, source, manifest_id, lease, stopped))

    def renew(self, name: str, number: int, lease: Lease) -> bool:
        return self._either(lambda c: c.renew(name, number, lease))

    def fail_abandoned(self, name: str, below: int, stopped: Stopped) -> builtins.list[str]:
        return self._either(lambda c: c.fail_abandoned(name, below, stopped))

    def discard_version(self, name: str, number: int) -> None:
        self._either(lambda c: c.discard_version(name, number))

    def set_status(self, name: str, number: int, status: str, **figures: Any) -> None:
        self._either(lambda c: c.set_status(name, number, status, **figures))

    def set_progress(self, name: str, number: int, done: int, total: int | None) -> None:
        self._either(lambda c: c.set_progress(name, number, done, total))

    def close(self) -> None:
        with self._lock:
            if self._quick is not None:
                self._quick.close()
                self._quick = None
            if self._catalog is not None:
                self._catalog.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # own fields (asked before __init__ ran: copy, pickle)
            raise AttributeError(name)
        return getattr(self.opened(), name)
