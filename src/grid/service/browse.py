"""Read a version: list a directory, stat a path, stream a file's verified bytes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from grid.errors import PathNotFoundError
from grid.records import FileInfo, VersionInfo
from grid.service.context import Context
from grid.service.resolve import held_until_closed, reading
from grid.store.manifest import DIR, FILE, KIND_NAMES, BlobLocation, Entry
from grid.store.manifest_reader import ManifestReader
from grid.store.reader import BlobFile
from grid.store.streaming import stream_files


def _info(entry: Entry) -> FileInfo:
    return FileInfo(
        entry.path, entry.kind_name, entry.size, entry.mode, entry.mtime_ns, entry.target
    )


@contextmanager
def opened(
    ctx: Context, name: str, number: int | None
) -> Iterator[tuple[VersionInfo, ManifestReader]]:
    """The readable version (held: not deleted meanwhile) and its open manifest, closed on
    exit."""
    with reading(ctx, name, number) as version:
        manifest = ctx.store.open_manifest(version.manifest_id)
        try:
            yield version, manifest
        finally:
            manifest.close()


def list_dir(
    ctx: Context, name: str, number: int | None, path: str = ""
) -> tuple[VersionInfo, list[FileInfo]]:
    """The entries of directory ``path`` in a version; a file path lists just that file."""
    with opened(ctx, name, number) as (version, manifest):
        entry = manifest.resolve(path)
        if entry.kind != DIR:
            return version, [_info(manifest.stat(path))]
        names = KIND_NAMES
        return version, [
            FileInfo(path, names[kind], size, mode, mtime, target)
            for path, kind, size, mode, mtime, target in manifest.list_plain(entry.path)
        ]


@dataclass(frozen=True)
class DirPage:
    """Part of a directory's entries, sorted by name: ``entries`` follow ``after``; ``total``
    counts them all; ``next_after`` continues the listing (None: this was the last part)."""

    version: VersionInfo
    path: str
    entries: list[FileInfo]
    total: int
    next_after: str | None


def list_page(
    ctx: Context, name: str, number: int | None, path: str, after: str = "", limit: int = 200
) -> DirPage:
    """At most ``limit`` entries of directory ``path`` named after ``after``: a folder of any
    size is shown a page at a time, never read whole.

    Raises:
        PathNotFoundError: no such directory.
    """
    with opened(ctx, name, number) as (version, manifest):
        folder = manifest.resolve(path)
        if folder.kind != DIR:
            raise PathNotFoundError(f"not a directory: {path}", path=path)
        rows = manifest.children(folder.id, after, limit + 1)
        prefix = f"{folder.path}/" if folder.path else ""
        entries = [
            FileInfo(prefix + e.path, e.kind_name, e.size, e.mode, e.mtime_ns, e.target)
            for e in rows[:limit]
        ]
        more = len(rows) > limit
        return DirPage(
            version,
            folder.path,
            entries,
            manifest.count_children(folder.id),
            rows[limit - 1].path if more else None,
        )


def stat_path(
    ctx: Context, name: str, number: int | None, path: str, *, follow: bool = False
) -> FileInfo:
    """Metadata of one path in a version; with ``follow``, of what a symlink points to."""
    with opened(ctx, name, number) as (_version, manifest):
        return _info(manifest.resolve(path) if follow else manifest.stat(path))


def _file_blobs(ctx: Context, version: VersionInfo, path: str) -> tuple[Entry, list[BlobLocation]]:
    """Resolve a regular file of a version (symlinks followed inside it) to its blobs."""
    manifest = ctx.store.open_manifest(version.manifest_id)
    try:
        entry = manifest.resolve(path)
        if entry.kind != FILE:
            raise PathNotFoundError(f"{path} is not a file in {version.ref}", path=path)
        return entry, manifest.blobs(entry)
    finally:
        manifest.close()


def read_file(ctx: Context, name: str, number: int | None, path: str) -> Iterator[bytes]:
    """Stream the bytes of a regular file (symlinks are followed inside the version), each
    blob verified against its BLAKE3 id before it is yielded. The version cannot be deleted
    until the stream is exhausted or closed.

    Raises:
        PathNotFoundError: no such file, or the path is a directory.
        IntegrityError: stored bytes are damaged; nothing wrong is ever yielded.
    """
    with held_until_closed(ctx, name, number) as version:
        _entry, blobs = _file_blobs(ctx, version, path)
    return _held_blobs(ctx, version.ref, blobs)


def _held_blobs(ctx: Context, ref: str, blobs: list[BlobLocation]) -> Iterator[bytes]:
    try:
        for loc in blobs:
            yield ctx.store.read_blob(loc)
    finally:
        ctx.store.readers.release(ref)


def open_file(ctx: Context, name: str, number: int | None, path: str) -> io.BufferedReader:
    """A seekable binary file object over a file of a version (symlinks followed inside it);
    the version cannot be deleted until it is closed.

    Raises:
        PathNotFoundError: no such file, or the path is a directory.
    """
    with held_until_closed(ctx, name, number) as version:
        entry, blobs = _file_blobs(ctx, version, path)
    raw = _HeldFile(ctx.store, blobs, name=entry.path)
    raw.ref = version.ref
    return io.BufferedReader(raw, buffer_size=1 << 20)


class _HeldFile(BlobFile):
    """A BlobFile that holds its version as being read until closed."""

    ref = ""

    def close(self) -> None:
        if self.ref and not self.closed:
            self._store.readers.release(self.ref)
        super().close()


def iter_files(
    ctx: Context, name: str, number: int | None, prefix: str = ""
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, bytes)`` for every file under ``prefix`` in storage order (packs are read
    sequentially, in large ranged reads): the fast way to consume a whole version."""
    with held_until_closed(ctx, name, number) as version:
        manifest = ctx.store.open_manifest(version.manifest_id)
    return _iter(ctx, manifest, prefix, version.ref)


def _iter(
    ctx: Context, manifest: ManifestReader, prefix: str, ref: str
) -> Iterator[tuple[str, bytes]]:
    try:
        yield from stream_files(ctx.store, manifest, prefix)
    finally:
        manifest.close()
        ctx.store.readers.release(ref)
