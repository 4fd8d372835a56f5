"""Create a new version of a datastore from a local folder or file.

Statuses: uploading (files are read, chunked and stored in packs) -> processing (every pack the
manifest references is checked to be stored) -> optimizing (the manifest's lookup index is built
and the manifest stored) -> succeeded. A failure marks the version failed with the reason and
touches no other version; a version is readable only once succeeded.

Resume: Ctrl-C, SIGTERM or a hang-up leave the version ``interrupted``; kill -9 or a crash leave
it ``uploading`` with a lease nobody renews (``grid.service.lease``). Running the same create
again (same datastore, same source) on any host takes that version over once its create has
stopped and finishes it under the same number; what was already stored is found in the index
(and unchanged files in the file state), so only the rest is read and uploaded. When a newer
version succeeds, older stopped ones are marked failed.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from grid.errors import (
    ArchiveError,
    GridError,
    Interrupted,
    InvalidNameError,
    UsageError,
)
from grid.records import (
    FAILED,
    INTERRUPTED,
    OPTIMIZING,
    PROCESSING,
    SUCCEEDED,
    Lease,
    VersionInfo,
)
from grid.reports import CreateProgress, Progress
from grid.service.context import Context
from grid.service.create_progress import Ticker, Totals
from grid.service.create_progress import reporter as progress_reporter
from grid.service.create_steps import (
    Base,
    SourceOptions,
    arrange_archive,
    check_packs,
    default_name,
    held_base,
    latest_same_tree,
    lost_error,
    manifest_meta,
    open_source,
)
from grid.service.lease import Heartbeat, my_lease, stopped
from grid.service.names import validate_name
from grid.service.ownership import ensure_owned
from grid.sources.archive_rules import ArchiveLimits
from grid.sources.local import LocalSource
from grid.store import IngestStats, ManifestWriter
from grid.store.ingest import WORKERS, ingest
from grid.store.referencing import reference
from grid.store.unchanged import Reused, reuse_unchanged
from grid.tree import Source, StreamedSource, Warn

__all__ = ["ArchiveLimits", "CreateProgress", "Progress", "SourceOptions", "create", "default_name"]


def create(
    ctx: Context,
    source_path: str,
    name: str | None = None,
    *,
    progress: Progress | None = None,
    warn: Warn | None = None,
    count_totals: bool = False,
    exclude: tuple[str, ...] = (),
    rehash: bool = False,
    skip_unchanged: bool = False,
    options: SourceOptions | None = None,
) -> VersionInfo:
    """Store ``source_path`` as the next version of datastore ``name`` (or finish the stopped
    create of the same source, see the module docstring).

    ``source_path`` is a local folder or file, ``s3://bucket/prefix`` or the http(s) URL of an
    archive (``options`` says how to read those). Folders in ``exclude`` (grid's own home)
    are never entered. A file deleted between listing
    and reading is left out with a warning, like one deleted before it was listed. An archive
    that is refused (hostile, corrupt, over a limit) leaves no version behind. With
    ``skip_unchanged``, a tree equal to the latest succeeded version's (same paths, kinds,
    modes, mtimes, sizes, targets and contents) makes no new version.

    Returns:
        The succeeded version, or with ``skip_unchanged`` and nothing changed, the latest one
        (created before this call).

    Raises:
        UsageError: missing or empty source, not an archive, bad name (before any version is
            allocated).
        ArchiveError: the archive was refused (no version is left).
        SourceError: a file could not be read (the version is marked failed).
        StorageError: the store failed, e.g. NoSpaceError (the version is marked failed).
        Interrupted: Ctrl-C or SIGTERM (the version is left interrupted, to resume).
    """
    if not source_path.strip():
        raise UsageError(
            "SOURCE is empty (an unset variable in a script?): nothing was stored",
            rule="SOURCE is a folder, a file, an archive URL or s3://bucket/prefix",
        )
    if name is None:
        name = default_name(source_path)
        try:
            validate_name(name)
        except InvalidNameError as exc:
            raise InvalidNameError(f"{exc.message}; pass --name NAME", rule=exc.rule) from exc
    else:
        validate_name(name)
    job = _Job(progress, warn, count_totals, rehash, skip_unchanged, options or SourceOptions())
    source, origin = open_source(ctx, source_path, warn, exclude, job.options)
    try:
        if source.is_empty():
            raise UsageError(
                f"{source_path} is an empty {source.noun}: nothing to store",
                rule="SOURCE must hold at least one file or folder",
            )
        return _create(ctx, source, origin, name, job)
    finally:
        source.close()


@dataclass(frozen=True)
class _Job:
    progress: Progress | None
    warn: Warn | None
    count_totals: bool
    rehash: bool
    skip_unchanged: bool
    options: SourceOptions


def _create(ctx: Context, source: Source, origin: str, name: str, job: _Job) -> VersionInfo:
    warn = job.warn
    ensure_owned(ctx)
    manifest_id = uuid.uuid4().hex
    manifest_path = ctx.scratch_path(f"{manifest_id}.manifest")
    lease = my_lease(ctx)
    version = ctx.catalog.resume_version(
        name, origin, manifest_id, lease, lambda v: stopped(ctx, v)
    )
    if version is not None and warn is not None:
        warn(f"resuming {version.ref}: its create of {origin} stopped before finishing")
    resumed = version is not None
    if version is None:
        version = ctx.catalog.new_version(name, origin, manifest_id, lease)
    heartbeat: Heartbeat | None = None
    try:  # from here on, any stop (Ctrl-C included) is recorded on the version
        if resumed:
            ctx.store.recover_packs(version.ref)
        heartbeat = Heartbeat(ctx, name, version.number, lease)
        if ctx.on_held is not None:
            ctx.on_held()
    except BaseException as exc:
        if heartbeat is not None:  # no renewing once the create has given up
            heartbeat.stop()
        _fail(ctx, version, exc, lease)
        if isinstance(exc, KeyboardInterrupt):
            raise _interrupted(version) from exc
        raise
    try:
        with held_base(ctx, version) as base:
            return _fill(ctx, source, origin, version, job, manifest_path, heartbeat, base)
    finally:
        heartbeat.stop()


def _interrupted(version: VersionInfo) -> Interrupted:
    return Interrupted(
        f"stopped; {version.ref} is unfinished: run the same create again to resume it"
    )


def _fill(
    ctx: Context,
    source: Source,
    origin: str,
    version: VersionInfo,
    job: _Job,
    manifest_path: str,
    heartbeat: Heartbeat,
    base: Base | None,
) -> VersionInfo:
    """Store the source into ``version`` and finish it (see ``create``); its manifest is
    stored as a delta against ``base``'s."""
    warn, archive = job.warn, source if isinstance(source, StreamedSource) else None
    name, manifest_id, lease = version.datastore, version.manifest_id, heartbeat.lease
    totals: Totals | None = None
    ticker: Ticker | None = None
    manifest: ManifestWriter | None = None
    staged: ManifestWriter | None = None
    try:

        def report(stats: IngestStats) -> None:
            if heartbeat.lost.is_set():
                raise lost_error(ctx, version)
            if ticker is not None:
                ticker.report(stats)
            else:
                reporter(stats)

        reporter = progress_reporter(ctx, version, job.progress, None, archive)
        reused = _reuse_unchanged(source, version, job, manifest_path, report, base, ctx)
        if job.options.pinned:  # --no-copy: the objects are referenced, none is read
            numbering = base.packs if base is not None and base.delta else None
            manifest = ManifestWriter(manifest_path, numbering)
            stats = reference(source, manifest, report)
        elif isinstance(reused, Reused):
            stats, manifest = reused.stats, reused.manifest
        else:
            source = reused  # the same entries; a walk already begun goes on
            recount = source.recount() if job.count_totals else None
            if recount is not None:
                totals = Totals(recount)
                reporter = progress_reporter(ctx, version, job.progress, totals, archive)
            ticker = Ticker(reporter) if archive is not None else None
            # an archive's entries are staged first, numbering packs as they come
            numbering = base.packs if base is not None and base.delta and archive is None else None
            manifest = ManifestWriter(manifest_path, numbering)
            if archive is not None:
                ctx.catalog.set_status(name, version.number, PROCESSING, lease=lease)
                staged = ManifestWriter(f"{manifest_path}.staged")
            stats = ingest(
                source,
                ctx.store,
                staged or manifest,
                progress=report,
                warn=warn,
                state=ctx.store.files,
                rehash=job.rehash,
                holder=version.ref,
                workers=source.workers or WORKERS,
            )
        if archive is not None:  # the final figure (progress is recorded once a second)
            ctx.catalog.set_progress(name, version.number, archive.downloaded, archive.total)
        root_mtime = source.root_mtime_ns()
        if archive is not None and staged is not None:
            root_mtime = arrange_archive(archive, staged, manifest, stats, job.options.keep_root)
        ctx.catalog.set_status(
            name,
            version.number,
            PROCESSING,
            files=stats.files,
            size=stats.bytes,
            stored_bytes=stats.stored_bytes,
            lease=lease,
        )
        check_packs(ctx, manifest)
        if job.skip_unchanged:
            latest = latest_same_tree(ctx, name, version.number, stats.tree_digest)
            if latest is not None:
                manifest.abort()
                ctx.catalog.discard_version(name, version.number)
                ctx.store.index.release(version.ref)
                return latest
        ctx.catalog.set_status(name, version.number, OPTIMIZING, lease=lease)
        manifest.finish(manifest_meta(version, stats, origin, root_mtime))
        delta_base = base.manifest_id if base is not None and base.delta else None
        stats.stored_bytes += ctx.store.put_manifest(manifest_id, manifest.path, delta_base)
        # Leases stay: a gc that started before this point did not mark this version's blobs;
        # gc itself drops leases of versions it has marked.
        ctx.catalog.set_status(
            name, version.number, SUCCEEDED, stored_bytes=stats.stored_bytes, lease=lease
        )
    except BaseException as exc:
        if isinstance(exc, ArchiveError):  # a refused archive leaves no version behind
            with contextlib.suppress(GridError):
                ctx.catalog.discard_version(name, version.number)
                ctx.store.index.release(version.ref)
        else:
            _fail(ctx, version, exc, lease)  # not if another create took it over
        for writer in (manifest, staged):
            if writer is not None:
                writer.abort()
        if isinstance(exc, KeyboardInterrupt):
            raise _interrupted(version) from exc
        raise
    finally:
        if totals is not None:
            totals.stop.set()
        if ticker is not None:
            ticker.stop.set()
        for path in (manifest_path, f"{manifest_path}.staged"):
            if os.path.exists(path):
                os.unlink(path)
    with contextlib.suppress(GridError):  # housekeeping: the version itself has succeeded
        for ref in ctx.catalog.fail_abandoned(name, version.number, lambda v: stopped(ctx, v)):
            ctx.store.index.release(ref)
    return ctx.catalog.version(name, version.number)


def _reuse_unchanged(
    source: Source,
    version: VersionInfo,
    job: _Job,
    manifest_path: str,
    report: Callable[[IngestStats], None],
    base: Base | None,
    ctx: Context,
) -> Reused | Source:
    """The previous version's manifest (``base``), copied, if a local folder is unchanged
    since then (see ``grid.store.unchanged``); else the source to ingest."""
    if job.rehash or base is None or not isinstance(source, LocalSource) or not source.is_dir:
        return source
    return reuse_unchanged(
        source,
        ctx.store,
        base.path,
        manifest_path,
        locate=source.location,
        holder=version.ref,
        progress=report,
    )


def _fail(ctx: Context, version: VersionInfo, exc: BaseException, lease: Lease) -> None:
    """Mark ``version`` failed (or interrupted) with the reason, if ``lease`` still holds it."""
    status = FAILED
    if isinstance(exc, KeyboardInterrupt):
        status = INTERRUPTED
        reason = "interrupted (Ctrl-C, SIGTERM or hang-up): run the same create again to resume"
    elif isinstance(exc, GridError):
        reason = exc.message
    else:
        reason = f"internal error: {type(exc).__name__}: {exc}"
    # The original error matters more; if this fails the version stays unfinished, never
    # succeeded.
    with contextlib.suppress(GridError):
        ctx.catalog.set_status(
            version.datastore, version.number, status, reason=reason, lease=lease
        )
        if status == FAILED:
            ctx.store.index.release(version.ref)
