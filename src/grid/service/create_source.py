"""What a create reads: a local folder or file, an ``s3://`` prefix or an archive URL, the
datastore name each gets by default, and an archive's entries put in storage order."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from grid.errors import UsageError
from grid.service.context import Context
from grid.sources import LocalSource
from grid.sources.archive import ArchiveSource, archive_name, is_url
from grid.sources.archive_rules import ArchiveLimits
from grid.sources.s3 import S3Source
from grid.store import IngestStats, ManifestWriter
from grid.store.arrange import arrange
from grid.tree import Source, Warn


@dataclass(frozen=True)
class StagedArchive:
    """An archive already sent to the storage (a browser's upload, in parts): ``open``
    gives its bytes from the start, ``size`` of them."""

    open: Callable[[], BinaryIO]
    size: int


@dataclass(frozen=True)
class SourceOptions:
    """How to read a remote source.

    ``endpoint_url``, ``profile``, ``region``: for ``s3://`` (default: the standard AWS
    chain). ``limits``: an archive's decompression-bomb bounds; ``keep_root``: keep an
    archive's single top-level folder instead of making its contents the root.
    ``staged``: the source is this archive (the source path only names it).
    """

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    keep_root: bool = False
    staged: StagedArchive | None = None


def default_name(source: str) -> str:
    """The datastore name a source gets without ``--name``: its base name (an S3 URL's last
    prefix component, or its bucket; an archive's file name less its suffix)."""
    if source.startswith("s3://"):
        return source[5:].rstrip("/").rsplit("/", 1)[-1]
    if is_url(source):
        return archive_name(source)
    return os.path.basename(os.path.normpath(os.path.abspath(source)))


def open_source(
    ctx: Context, path: str, warn: Warn | None, exclude: tuple[str, ...], options: SourceOptions
) -> tuple[Source, str]:
    """The source for ``path`` (a local folder or file, an s3:// URL or an archive URL) and
    its identity."""
    if options.staged is not None:
        staged = ArchiveSource(
            path,
            warn,
            limits=options.limits,
            spool_dir=ctx.scratch_dir,
            body=options.staged.open(),
            size=options.staged.size,
        )
        return staged, path
    if path.startswith("s3://"):
        s3 = S3Source(
            path,
            warn,
            endpoint_url=options.endpoint_url,
            profile=options.profile,
            region=options.region,
        )
        return s3, path.rstrip("/")
    if is_url(path):
        archive = ArchiveSource(
            path,
            warn,
            limits=options.limits,
            allow_private=ctx.allow_private_urls,
            spool_dir=ctx.scratch_dir,
        )
        return archive, path
    scheme = path.split("://", 1)[0] if "://" in path else ""
    if scheme.isalnum() and not os.path.exists(path):
        raise UsageError(
            f"{path}: {scheme}:// is not supported; SOURCE is a folder, a file, an http(s) URL "
            "of an archive or s3://bucket/prefix",
            rule="SOURCE is a path, an http(s) archive URL or an s3:// URL",
        )
    return LocalSource(path, warn, exclude=exclude), os.path.abspath(path)


def arrange_archive(
    archive: ArchiveSource,
    staged: ManifestWriter,
    manifest: ManifestWriter,
    stats: IngestStats,
    keep_root: bool,
) -> int:
    """Put an archive's staged entries into ``manifest`` in storage order (see
    ``grid.store.arrange``), updating ``stats``; return the root's mtime."""
    staged.stage()
    done = arrange(
        staged.path,
        manifest,
        hardlinks=archive.hardlinks,
        dir_meta=archive.dir_meta,
        keep_root=keep_root,
    )
    if done.kept_for_links:
        archive.warn("kept the archive's top folder: some of its symlinks point beside it")
    stats.files, stats.dirs, stats.symlinks = done.files, done.dirs, done.symlinks
    stats.bytes, stats.tree_digest = done.bytes, done.tree_digest
    return done.root_mtime_ns
