"""``grid.Client``: every datastore operation, in-process on the embedded installation.

>>> import grid
>>> client = grid.Client()              # ~/.grid, or $GRID_HOME
>>> v = client.create("my_dataset")     # VersionInfo(datastore='my_dataset', number=1, ...)
>>> client.read_bytes("my_dataset", 1, "train/a.jpg")
"""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator

from grid.catalog import Catalog
from grid.client.interface import DatastoreClient
from grid.errors import UsageError, storage_error
from grid.objects import LocalDirectory, ObjectStore
from grid.records import DatastoreInfo, FileInfo, VersionInfo
from grid.reports import DiffReport, DownloadReport, GcReport, Progress, VerifyReport
from grid.service import browse, create, delete, diff, download, gc, listing, snapshot, verify
from grid.service.context import Context
from grid.service.home_guard import check_home
from grid.service.names import parse_ref
from grid.service.snapshot import Snapshot
from grid.settings import Settings
from grid.store import Store
from grid.tree import Warn

_REMOTE_CACHE = 10 << 30


def _slug(url: str | None) -> str:
    """A file-name-safe tag for a storage URL (local caches are kept per storage)."""
    return "".join(c if c.isalnum() else "-" for c in (url or "").removeprefix("s3://"))[:80]


class Client(DatastoreClient):
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
        self._limits = create.ArchiveLimits(
            max_bytes=settings.archive_max_size,
            max_entries=settings.archive_max_files,
            max_ratio=settings.archive_max_ratio,
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
            cache_size = _REMOTE_CACHE if remote else 0
        # Local state is kept per storage: the catalog, index, caches and file state of one
        # storage never mix with another's.
        tag = owner if not remote else f"{owner}-{_slug(url)}"
        db = "catalog.db" if not remote else f"catalog-{_slug(url)}.db"
        catalog = Catalog(f"sqlite:///{os.path.join(self.home, db)}", owner)
        store = Store(
            objects,
            os.path.join(self.home, "index", f"{tag}.sqlite"),
            os.path.join(self.home, "cache", tag),
            cache_limit=cache_size,
            state_path=os.path.join(self.home, "state", f"{tag}.sqlite"),
        )
        self._ctx = Context(
            catalog,
            store,
            os.path.join(self.home, "tmp"),
            allow_private_urls,
            storage=f"{url.rstrip('/')}/{owner}" if url else os.path.join(self.home, "objects"),
            home=self.home,
            host_id=settings.host_id,
            lease_seconds=settings.lease_seconds,
            gc_grace=settings.gc_grace if gc_grace is None else gc_grace,
        )

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
        if url.startswith("file:///"):
            return LocalDirectory(os.path.join(url[7:], owner), durable=fsync), False
        if not url.startswith("s3://"):
            raise UsageError(
                f"unsupported storage URL {url!r}",
                rule="GRID_STORAGE_URL is s3://bucket[/prefix] or file:///folder (or unset for "
                "GRID_HOME/objects)",
            )
        from grid.objects.s3 import S3Store, parse_url

        try:
            bucket, prefix = parse_url(url)
        except ValueError as exc:
            raise UsageError(str(exc), rule="s3://bucket[/prefix]") from exc
        return S3Store(bucket, f"{prefix}/{owner}" if prefix else owner), True

    # -- writing -----------------------------------------------------------------------------
    def create(
        self,
        source: str,
        name: str | None = None,
        *,
        progress: Progress | None = None,
        warn: Warn | None = None,
        count_totals: bool = False,
        rehash: bool = False,
        skip_unchanged: bool = False,
        endpoint_url: str | None = None,
        profile: str | None = None,
        keep_root: bool = False,
        max_size: int | None = None,
        max_files: int | None = None,
        max_ratio: float | None = None,
    ) -> VersionInfo:
        """Make a new version of datastore ``name`` (default: the source's base name) from a
        folder or a file, or finish a stopped create of the same source under its number.

        Files unchanged since this machine last stored them are not read again unless
        ``rehash``. With ``skip_unchanged``, a tree equal to the latest version's makes no new
        version and that version is returned. ``source`` may be ``s3://bucket/prefix``
        (``endpoint_url`` and ``profile`` for it; default the standard AWS chain) or the
        http(s) URL of a .zip or .tar[.gz|.bz2|.xz|.zst] archive (its single top folder
        becomes the root unless ``keep_root``; ``max_size``, ``max_files`` and ``max_ratio``
        bound what it may expand to, default from GRID_ARCHIVE_MAX_*). See
        ``grid.service.create.create`` for statuses and errors."""
        base = self._limits
        limits = create.ArchiveLimits(
            max_bytes=base.max_bytes if max_size is None else max_size,
            max_entries=base.max_entries if max_files is None else max_files,
            max_ratio=base.max_ratio if max_ratio is None else max_ratio,
        )
        return create.create(
            self._ctx,
            source,
            name,
            progress=progress,
            warn=warn,
            count_totals=count_totals,
            exclude=(self.home,),
            rehash=rehash,
            skip_unchanged=skip_unchanged,
            options=create.SourceOptions(
                endpoint_url=endpoint_url, profile=profile, limits=limits, keep_root=keep_root
            ),
        )

    def delete(self, name: str, version: int | None = None) -> builtins.list[VersionInfo]:
        """Delete one version, or the whole datastore when ``version`` is None."""
        return delete.delete(self._ctx, name, version)

    def keep_last(
        self, name: str, keep: int, *, warn: Warn | None = None
    ) -> builtins.list[VersionInfo]:
        """Delete the versions of ``name`` older than its ``keep`` newest succeeded ones
        (those in use are kept for a later run, with a ``warn``)."""
        return delete.keep_last(self._ctx, name, keep, warn)

    def gc(
        self, *, dry_run: bool = False, repack_below: float = 0.5, grace: float | None = None
    ) -> GcReport:
        """Delete packs no version needs and repack those mostly unneeded; see
        ``grid.service.gc``. Safe while creates run. Objects younger than ``grace`` seconds
        (default: the client's ``gc_grace``) are kept."""
        return gc.gc(self._ctx, dry_run=dry_run, repack_below=repack_below, grace=grace)

    # -- reading -----------------------------------------------------------------------------
    def list(self) -> builtins.list[DatastoreInfo]:
        """Every datastore with its latest version."""
        return listing.list_datastores(self._ctx)

    def versions(self, name: str) -> builtins.list[VersionInfo]:
        """All versions of ``name``, oldest first."""
        return listing.show(self._ctx, name)

    def version(self, name: str, version: int) -> VersionInfo:
        """One version of ``name``."""
        return listing.show(self._ctx, name, version)[0]

    def ls(self, name: str, version: int | None = None, path: str = "") -> builtins.list[FileInfo]:
        """Entries of directory ``path`` of a succeeded version (default: the latest)."""
        return browse.list_dir(self._ctx, name, version, path)[1]

    def stat(self, name: str, version: int | None, path: str, *, follow: bool = False) -> FileInfo:
        """Metadata of ``path`` in a version (of a symlink's target with ``follow``)."""
        return browse.stat_path(self._ctx, name, version, path, follow=follow)

    def iter_bytes(self, name: str, version: int | None, path: str) -> Iterator[bytes]:
        """Stream a file's bytes, verified against their hashes."""
        return browse.read_file(self._ctx, name, version, path)

    def read_bytes(self, name: str, version: int | None, path: str) -> bytes:
        """Return a whole file's bytes, verified against their hashes."""
        return b"".join(self.iter_bytes(name, version, path))

    def open(self, name: str, version: int | None, path: str) -> io.BufferedReader:
        """Open a file of a version as a seekable binary file object (read-only)."""
        return browse.open_file(self._ctx, name, version, path)

    def iter_files(
        self, name: str, version: int | None = None, prefix: str = ""
    ) -> Iterator[tuple[str, bytes]]:
        """Yield ``(path, bytes)`` of every file under ``prefix`` in storage order, reading packs
        sequentially: for loaders that consume a whole dataset."""
        return browse.iter_files(self._ctx, name, version, prefix)

    def diff(self, name: str, a: int | None, b: int | None) -> DiffReport:
        """Paths added, removed and modified from version ``a`` to ``b`` (None: the latest)."""
        return diff.diff(self._ctx, name, a, b)

    def verify(self, name: str, version: int | None = None) -> VerifyReport:
        """Re-read and re-hash every blob of a version; ``report.damaged`` names bad files."""
        return verify.verify(self._ctx, name, version)

    def download(
        self,
        name: str,
        version: int | None,
        dest: str,
        *,
        force: bool = False,
        resume: bool = False,
    ) -> DownloadReport:
        """Write a version's tree under ``dest`` (modes, mtimes, symlinks kept); resumable."""
        return download.download(self._ctx, name, version, dest, force=force, resume=resume)

    def snapshot(self, name: str, version: int | None = None) -> Snapshot:
        """Open a succeeded version for random access by entry id (used by the FUSE mount)."""
        return snapshot.open_snapshot(self._ctx, name, version)

    @staticmethod
    def default_name(source: str) -> str:
        """The datastore name ``create`` uses for ``source`` when none is given."""
        return create.default_name(source)

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, int | None]:
        """Split ``NAME[:VERSION]``."""
        return parse_ref(ref)
