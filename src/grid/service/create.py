"""Create a new version of a datastore from a local folder or file.

Statuses: uploading (files are read, chunked and stored in packs) -> processing (every pack the
manifest references is checked to be stored) -> optimizing (the manifest's lookup index is built
and the manifest stored) -> succeeded. A failure marks the version failed with the reason and
touches no other version; a version is readable only once succeeded.

Resume: Ctrl-C, SIGTERM or a hang-up leave the version ``interrupted``; kill -9 or a crash leave
it ``uploading`` with a process that is gone. Running the same create again (same datastore,
same source) claims that version and finishes it under the same number; what was already
stored is found in the index (and unchanged files in the file state), so only the rest is read
and uploaded. When a newer version succeeds, older stopped ones are marked failed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from grid.errors import GridError, IntegrityError, Interrupted, InvalidNameError, UsageError
from grid.records import (
    FAILED,
    INTERRUPTED,
    OPTIMIZING,
    PROCESSING,
    SUCCEEDED,
    VersionInfo,
)
from grid.service.context import Context
from grid.service.names import validate_name
from grid.sources import LocalSource
from grid.sources.s3 import S3Source
from grid.store import IngestStats, ManifestWriter, ingest
from grid.store.ingest import WORKERS
from grid.tree import Source, Warn

_S3_WORKERS = 16  # GETs wait on the network: many in flight


@dataclass
class CreateProgress:
    """Where a create stands; totals are None until the background count has finished."""

    files: int
    bytes: int
    total_files: int | None
    total_bytes: int | None
    phase: str


Progress = Callable[[CreateProgress], None]


def default_name(source: str) -> str:
    """The datastore name a source gets without ``--name``: its base name (an S3 URL's last
    prefix component, or its bucket)."""
    if source.startswith("s3://"):
        return source[5:].rstrip("/").rsplit("/", 1)[-1]
    return os.path.basename(os.path.normpath(os.path.abspath(source)))


def _open_source(
    path: str, warn: Warn | None, exclude: tuple[str, ...], s3: dict[str, str | None]
) -> tuple[Source, str]:
    """The source for ``path`` (a local folder or file, or an s3:// URL) and its identity."""
    if path.startswith("s3://"):
        return S3Source(path, warn, **s3), path.rstrip("/")
    return LocalSource(path, warn, exclude=exclude), os.path.abspath(path)


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
    s3: dict[str, str | None] | None = None,
) -> VersionInfo:
    """Store ``source_path`` as the next version of datastore ``name`` (or finish the stopped
    create of the same source, see the module docstring).

    ``source_path`` is a local folder or file, or ``s3://bucket/prefix`` (``s3`` holds its
    ``endpoint_url``, ``profile`` and ``region``). Folders in ``exclude`` (grid's own home)
    are never entered. A file deleted between listing
    and reading is left out with a warning, like one deleted before it was listed. With
    ``skip_unchanged``, a tree equal to the latest succeeded version's (same paths, kinds,
    modes, mtimes, sizes, targets and contents) makes no new version.

    Returns:
        The succeeded version, or with ``skip_unchanged`` and nothing changed, the latest one
        (created before this call).

    Raises:
        UsageError: missing or empty source, bad name (before any version is allocated).
        SourceError: a file could not be read (the version is marked failed).
        StorageError: the store failed, e.g. NoSpaceError (the version is marked failed).
        Interrupted: Ctrl-C or SIGTERM (the version is left interrupted, to resume).
    """
    source, origin = _open_source(source_path, warn, exclude, s3 or {})
    if name is None:
        name = default_name(source_path)
        try:
            validate_name(name)
        except InvalidNameError as exc:
            raise InvalidNameError(f"{exc.message}; pass --name NAME", rule=exc.rule) from exc
    else:
        validate_name(name)
    if source.is_empty():
        raise UsageError(
            f"{source_path} is an empty {'prefix' if origin.startswith('s3://') else 'folder'}: "
            "nothing to store",
            rule="SOURCE must hold at least one file or folder",
        )
    manifest_id = uuid.uuid4().hex
    manifest_path = ctx.scratch_path(f"{manifest_id}.manifest")
    version = ctx.catalog.resume_version(name, origin, manifest_id, process_gone)
    if version is not None and warn is not None:
        warn(f"resuming {version.ref}: its create of {origin} stopped before finishing")
    if version is None:
        version = ctx.catalog.new_version(name, origin, manifest_id)
    else:
        ctx.store.recover_packs(version.ref)
    totals = _Totals(source) if count_totals and isinstance(source, LocalSource) else None
    report = _reporter(progress, totals)
    manifest: ManifestWriter | None = None
    try:
        manifest = ManifestWriter(manifest_path)
        stats = ingest(
            source,
            ctx.store,
            manifest,
            progress=report,
            warn=warn,
            state=ctx.store.files,
            rehash=rehash,
            holder=version.ref,
            workers=_S3_WORKERS if isinstance(source, S3Source) else WORKERS,
        )
        ctx.catalog.set_status(
            name,
            version.number,
            PROCESSING,
            files=stats.files,
            size=stats.bytes,
            stored_bytes=stats.stored_bytes,
        )
        _check_packs(ctx, manifest)
        if skip_unchanged:
            latest = _latest_same_tree(ctx, name, version.number, stats.tree_digest)
            if latest is not None:
                manifest.abort()
                ctx.catalog.discard_version(name, version.number)
                ctx.store.index.release(version.ref)
                return latest
        ctx.catalog.set_status(name, version.number, OPTIMIZING)
        manifest.finish(_meta(version, stats, origin, source))
        stats.stored_bytes += ctx.store.put_manifest(manifest_id, manifest.path)
        # Leases stay: a gc that started before this point did not mark this version's blobs;
        # gc itself drops leases of versions it has marked.
        ctx.catalog.set_status(name, version.number, SUCCEEDED, stored_bytes=stats.stored_bytes)
    except BaseException as exc:
        _fail(ctx, version, exc)
        if manifest is not None:
            manifest.abort()
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(
                f"stopped; {version.ref} is unfinished: run the same create again to resume it"
            ) from exc
        raise
    finally:
        if totals is not None:
            totals.stop.set()
        if os.path.exists(manifest_path):
            os.unlink(manifest_path)
    with contextlib.suppress(GridError):  # housekeeping: the version itself has succeeded
        for ref in ctx.catalog.fail_abandoned(name, version.number, process_gone):
            ctx.store.index.release(ref)
    return ctx.catalog.version(name, version.number)


def process_gone(host: str, pid: int) -> bool:
    """Whether the create that ran as ``pid`` on ``host`` has certainly stopped (only a
    process of this machine can be checked; one elsewhere counts as running)."""
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _latest_same_tree(ctx: Context, name: str, number: int, tree_digest: str) -> VersionInfo | None:
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


def _reporter(progress: Progress | None, totals: _Totals | None) -> Callable[[IngestStats], None]:
    def report(stats: IngestStats) -> None:
        if progress is not None:
            progress(
                CreateProgress(
                    stats.files,
                    stats.bytes,
                    totals.files if totals and totals.done else None,
                    totals.bytes if totals and totals.done else None,
                    "uploading",
                )
            )

    return report


def _check_packs(ctx: Context, manifest: ManifestWriter) -> None:
    missing = ctx.store.missing_packs(manifest.pack_ids)
    if missing:
        raise IntegrityError(f"{len(missing)} pack(s) missing after upload, e.g. {missing[0]}")


def _meta(version: VersionInfo, stats: IngestStats, origin: str, source: Source) -> dict[str, str]:
    root_mtime = source.root_stat.st_mtime_ns if isinstance(source, LocalSource) else 0
    return {
        "datastore": version.datastore,
        "version": str(version.number),
        "source": origin,
        "files": str(stats.files),
        "bytes": str(stats.bytes),
        "mtime_ns": str(root_mtime),
        "tree_digest": stats.tree_digest,
    }


def _fail(ctx: Context, version: VersionInfo, exc: BaseException) -> None:
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
        ctx.catalog.set_status(version.datastore, version.number, status, reason=reason)
        if status == FAILED:
            ctx.store.index.release(version.ref)


class _Totals:
    """Counts the source's files and bytes in the background, for an ETA."""

    def __init__(self, source: LocalSource) -> None:
        self.files = self.bytes = 0
        self.done = False
        self.stop = threading.Event()
        self._source = source
        threading.Thread(target=self._count, name="grid-count", daemon=True).start()

    def _count(self) -> None:
        try:
            for entry in LocalSource(self._source.root, exclude=self._source.exclude).entries():
                if self.stop.is_set():
                    return
                if stat.S_ISREG(entry.mode):
                    self.files += 1
                    self.bytes += entry.size
        except GridError:
            return
        self.done = True
