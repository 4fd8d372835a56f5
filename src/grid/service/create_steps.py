"""The steps of a create around its ingest: opening the source (through the table of kinds
in ``grid.sources.factory``), putting a streamed source's entries in storage order, checking
that every pack is stored, what the manifest records, whether the tree is unchanged, and
the error for a create that lost its version, and the earlier version a new manifest is
stored as a delta against."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from grid.errors import ConflictError, GridError, IntegrityError, NotFoundError
from grid.objects.pinned import is_pin
from grid.records import SUCCEEDED, VersionInfo
from grid.service.context import Context
from grid.sources import factory
from grid.sources.factory import Place, SourceOptions, StagedArchive, default_name
from grid.store import IngestStats, ManifestWriter
from grid.store.arrange import arrange
from grid.tree import Source, StreamedSource, Warn

__all__ = [
    "Base",
    "SourceOptions",
    "StagedArchive",
    "arrange_archive",
    "check_packs",
    "default_name",
    "held_base",
    "latest_same_tree",
    "lost_error",
    "manifest_meta",
    "open_source",
]


def open_source(
    ctx: Context, path: str, warn: Warn | None, exclude: tuple[str, ...], options: SourceOptions
) -> tuple[Source, str]:
    """The source for ``path`` and its identity (see ``grid.sources.factory.open_source``)."""
    place = Place(ctx.scratch_dir, exclude, ctx.allow_private_urls)
    return factory.open_source(path, warn, options, place)


def arrange_archive(
    archive: StreamedSource,
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


def latest_same_tree(ctx: Context, name: str, number: int, tree_digest: str) -> VersionInfo | None:
    """The latest succeeded version before ``number`` if it holds the same tree."""
    older = [v for v in ctx.catalog.versions(name) if v.status == SUCCEEDED and v.number < number]
    if not older:
        return None
    manifest = ctx.store.open_manifest(older[-1].manifest_id)
    try:
        same = manifest.meta.get("tree_digest") == tree_digest
    finally:
        manifest.close()
    return older[-1] if same else None


def check_packs(ctx: Context, manifest: ManifestWriter) -> None:
    """Refuse a manifest that references a pack the storage does not hold."""
    if ctx.server_checked:
        return  # the server checks every pack at commit, more thoroughly
    missing = ctx.store.missing_packs([p for p in manifest.pack_ids if not is_pin(p)])
    if missing:
        raise IntegrityError(f"{len(missing)} pack(s) missing after upload, e.g. {missing[0]}")


def manifest_meta(
    version: VersionInfo, stats: IngestStats, origin: str, root_mtime: int
) -> dict[str, str]:
    """What a version's manifest records about it."""
    return {
        "datastore": version.datastore,
        "version": str(version.number),
        "source": origin,
        "files": str(stats.files),
        "bytes": str(stats.bytes),
        "mtime_ns": str(root_mtime),
        "tree_digest": stats.tree_digest,
    }


def lost_error(ctx: Context, version: VersionInfo) -> ConflictError:
    """The error for a create whose version is no longer its own."""
    try:
        now = ctx.catalog.version(version.datastore, version.number)
    except NotFoundError:
        return ConflictError(f"{version.ref} was deleted while it was being created; stopping")
    return ConflictError(
        f"{version.ref} was taken over by a create on {now.host} (pid {now.pid}) after this "
        "one stopped renewing its lease (was the machine asleep?); stopping"
    )


@dataclass(frozen=True)
class Base:
    """The version before a new one: its manifest (id, local file, packs), which an
    unchanged tree copies, and which the new manifest is stored as a delta against where
    ``delta`` (not in team mode: a server stores whole manifests)."""

    manifest_id: str
    path: str
    packs: dict[int, str]
    delta: bool


@contextlib.contextmanager
def held_base(ctx: Context, version: VersionInfo) -> Iterator[Base | None]:
    """The latest succeeded version before ``version``, held as a reader for the block, so
    that no delete or gc takes its manifest away while a new manifest is stored as a delta
    against it (docs/format.md, "Manifest objects"). None for a datastore's first version,
    or when it cannot be read."""
    older = []
    with contextlib.suppress(GridError):  # no base: the manifest is stored whole
        older = [
            v
            for v in ctx.catalog.versions(version.datastore)
            if v.status == SUCCEEDED and v.number < version.number
        ]
    if not older:
        yield None
        return
    with ctx.store.readers.reading(older[-1].ref):
        try:  # read again under the lock: a gc may have rewritten it, a delete removed it
            latest = ctx.catalog.version(version.datastore, older[-1].number)
            reader = ctx.store.open_manifest(latest.manifest_id)
        except GridError:
            yield None
            return
        try:
            base = Base(
                latest.manifest_id, reader.path, reader.pack_numbers, not ctx.server_checked
            )
        finally:
            reader.close()
        yield base if latest.status == SUCCEEDED else None
