"""Every datastore operation done by this process through the service layer, on the
``Context`` of the owner a name belongs to. The embedded ``grid.Client`` has one context (its
installation); the team-mode ``RemoteClient`` has one per owner (``team/name`` names a team's
datastore), with a remote catalog and the server's object URLs."""

from __future__ import annotations

import builtins
import dataclasses
import io
from abc import abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

from grid.client.interface import DatastoreClient
from grid.records import DatastoreInfo, FileInfo, RunInfo, VersionInfo
from grid.reports import (
    DiffReport,
    DownloadReport,
    GcReport,
    Progress,
    UsageReport,
    VerifyReport,
)
from grid.tree import Warn

if TYPE_CHECKING:
    from grid.service.context import Context
    from grid.service.create import ArchiveLimits
    from grid.service.snapshot import Snapshot

REMOTE_CACHE = 10 << 30  # default bytes of blob cache when the objects are remote


def file_tag(url: str | None) -> str:
    """A file-name-safe tag for a storage URL (local caches are kept per storage)."""
    return "".join(c if c.isalnum() else "-" for c in (url or "").removeprefix("s3://"))[:80]


class ServiceClient(DatastoreClient):
    """The operations, given ``_open`` (which context a datastore name lives in)."""

    home: str
    _limit_settings: tuple[int, int, float]  # GRID_ARCHIVE_MAX_SIZE, _FILES, _RATIO

    @abstractmethod
    def _open(self, name: str | None) -> tuple[Context, str | None, str]:
        """``(context, name inside it, prefix shown before names: '' or 'OWNER/')``."""

    @staticmethod
    def _shown(v: VersionInfo, prefix: str) -> VersionInfo:
        return dataclasses.replace(v, datastore=prefix + v.datastore) if prefix else v

    @property
    def _limits(self) -> ArchiveLimits:
        """The archive limits of the settings (the create module is imported when needed)."""
        from grid.service.create import ArchiveLimits

        size, files, ratio = self._limit_settings
        return ArchiveLimits(max_bytes=size, max_entries=files, max_ratio=ratio)

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
        no_copy: bool = False,
    ) -> VersionInfo:
        """Make a new version of datastore ``name`` (default: the source's base name) from a
        folder or a file, or finish a stopped create of the same source under its number.

        Files unchanged since this machine last stored them are not read again unless
        ``rehash``. With ``skip_unchanged``, a tree equal to the latest version's makes no new
        version and that version is returned. ``source`` may be ``s3://bucket/prefix``
        (``endpoint_url`` and ``profile`` for it; default the standard AWS chain) or the
        http(s) URL of a .zip or .tar[.gz|.bz2|.xz|.zst] archive (its single top folder
        becomes the root unless ``keep_root``; ``max_size``, ``max_files`` and ``max_ratio``
        bound what it may expand to, default from GRID_ARCHIVE_MAX_*). With ``no_copy`` (an
        ``s3://`` prefix only) the version references the objects where they are, each
        pinned (``grid.store.referencing``). See ``grid.service.create.create`` for statuses
        and errors."""
        from grid.service import create

        base = self._limits
        limits = create.ArchiveLimits(
            max_bytes=base.max_bytes if max_size is None else max_size,
            max_entries=base.max_entries if max_files is None else max_files,
            max_ratio=base.max_ratio if max_ratio is None else max_ratio,
        )
        ctx, plain, prefix = self._open(name)
        v = create.create(
            ctx,
            source,
            plain,
            progress=progress,
            warn=warn,
            count_totals=count_totals,
            exclude=(self.home,),
            rehash=rehash,
            skip_unchanged=skip_unchanged,
            options=create.SourceOptions(
                endpoint_url=endpoint_url,
                profile=profile,
                limits=limits,
                keep_root=keep_root,
                pinned=no_copy,
            ),
        )
        return self._shown(v, prefix)

    def delete(self, name: str, version: int | None = None) -> builtins.list[VersionInfo]:
        """Delete one version, or the whole datastore when ``version`` is None."""
        from grid.service import delete, runs

        ctx, plain, prefix = self._open(name)
        self.list_runs()  # runs whose supervisor here is gone hold nothing any more
        if version is not None:  # (a whole datastore: the catalog refuses as it deletes)
            runs.refuse_live(self.runs, name, [version])
        return [self._shown(v, prefix) for v in delete.delete(ctx, str(plain), version)]

    def keep_last(
        self, name: str, keep: int, *, warn: Warn | None = None
    ) -> builtins.list[VersionInfo]:
        """Delete the versions of ``name`` older than its ``keep`` newest succeeded ones
        (those in use are kept for a later run, with a ``warn``)."""
        from grid.service import delete

        ctx, plain, prefix = self._open(name)
        self.list_runs()
        return [self._shown(v, prefix) for v in delete.keep_last(ctx, str(plain), keep, warn)]

    def gc(
        self, *, dry_run: bool = False, repack_below: float = 0.5, grace: float | None = None
    ) -> GcReport:
        """Delete packs no version needs and repack those mostly unneeded; see
        ``grid.service.gc``. Safe while creates run. Objects younger than ``grace`` seconds
        (default: the client's ``gc_grace``) are kept."""
        from grid.service import gc

        ctx, _, _ = self._open(None)
        return gc.gc(ctx, dry_run=dry_run, repack_below=repack_below, grace=grace)

    def usage(self) -> UsageReport:
        """Where the store's bytes go (``grid.service.usage``)."""
        from grid.service import usage

        ctx, _, _ = self._open(None)
        return usage.usage(ctx)

    # -- reading -----------------------------------------------------------------------------
    def list(self) -> builtins.list[DatastoreInfo]:
        """Every datastore with its latest version."""
        from grid.service import listing

        ctx, _, _ = self._open(None)
        return listing.list_datastores(ctx)

    def versions(self, name: str) -> builtins.list[VersionInfo]:
        """All versions of ``name``, oldest first."""
        from grid.service import listing

        ctx, plain, prefix = self._open(name)
        return [self._shown(v, prefix) for v in listing.show(ctx, str(plain))]

    def version(self, name: str, version: int) -> VersionInfo:
        """One version of ``name``."""
        from grid.service import listing

        ctx, plain, prefix = self._open(name)
        return self._shown(listing.show(ctx, str(plain), version)[0], prefix)

    def ls(self, name: str, version: int | None = None, path: str = "") -> builtins.list[FileInfo]:
        """Entries of directory ``path`` of a succeeded version (default: the latest)."""
        from grid.service import browse

        ctx, plain, _ = self._open(name)
        return browse.list_dir(ctx, str(plain), version, path)[1]

    def stat(self, name: str, version: int | None, path: str, *, follow: bool = False) -> FileInfo:
        """Metadata of ``path`` in a version (of a symlink's target with ``follow``)."""
        from grid.service import browse

        ctx, plain, _ = self._open(name)
        return browse.stat_path(ctx, str(plain), version, path, follow=follow)

    def iter_bytes(self, name: str, version: int | None, path: str) -> Iterator[bytes]:
        """Stream a file's bytes, verified against their hashes."""
        from grid.service import browse

        ctx, plain, _ = self._open(name)
        return browse.read_file(ctx, str(plain), version, path)

    def open(self, name: str, version: int | None, path: str) -> io.BufferedReader:
        """Open a file of a version as a seekable binary file object (read-only)."""
        from grid.service import browse

        ctx, plain, _ = self._open(name)
        return browse.open_file(ctx, str(plain), version, path)

    def iter_files(
        self, name: str, version: int | None = None, prefix: str = ""
    ) -> Iterator[tuple[str, bytes]]:
        """Yield ``(path, bytes)`` of every file under ``prefix`` in storage order, reading packs
        sequentially: for loaders that consume a whole dataset."""
        from grid.service import browse

        ctx, plain, _ = self._open(name)
        return browse.iter_files(ctx, str(plain), version, prefix)

    def diff(self, name: str, a: int | None, b: int | None) -> DiffReport:
        """Paths added, removed and modified from version ``a`` to ``b`` (None: the latest)."""
        from grid.service import diff

        ctx, plain, _ = self._open(name)
        return diff.diff(ctx, str(plain), a, b)

    def verify(self, name: str, version: int | None = None) -> VerifyReport:
        """Re-read and re-hash every blob of a version; ``report.damaged`` names bad files."""
        from grid.service import verify

        ctx, plain, prefix = self._open(name)
        report = verify.verify(ctx, str(plain), version)
        return dataclasses.replace(report, version=self._shown(report.version, prefix))

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
        from grid.service import download

        ctx, plain, prefix = self._open(name)
        report = download.download(ctx, str(plain), version, dest, force=force, resume=resume)
        return dataclasses.replace(report, version=self._shown(report.version, prefix))

    def snapshot(self, name: str, version: int | None = None) -> Snapshot:
        """Open a succeeded version for random access by entry id (used by the FUSE mount)."""
        from grid.service import snapshot

        ctx, plain, _ = self._open(name)
        return snapshot.open_snapshot(ctx, str(plain), version)

    # -- runs and sessions ---------------------------------------------------------------------
    def pin(self, name: str, version: int | None = None) -> VersionInfo:
        """The version a run attaches: ``version`` (succeeded), or the latest succeeded one."""
        from grid.service import runs

        ctx, plain, prefix = self._open(name)
        return self._shown(runs.pin(ctx, str(plain), version, name), prefix)

    def list_runs(self, kind: str | None = None) -> builtins.list[RunInfo]:
        """The caller's runs or sessions, oldest first (gone supervisors here: lost)."""
        from grid.service import runs

        ctx, _, _ = self._open(None)
        return runs.reap(self.runs, ctx.host_id, self.runs.list(kind))

    def version_runs(self, name: str, version: int) -> builtins.list[RunInfo]:
        """The runs and sessions, of anyone, that attached ``name:version``."""
        self.version(name, version)  # not found is said as for any other version
        return self.runs.users_of(name, version)
