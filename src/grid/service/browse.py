"""Read a version: list a directory, stat a path, stream a file's verified bytes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from grid.errors import PathNotFoundError
from grid.records import FileInfo, VersionInfo
from grid.service.context import Context
from grid.service.resolve import readable_version
from grid.store.manifest import DIR, FILE, BlobLocation, Entry, ManifestReader
from grid.store.reader import BlobFile, stream_files


def _info(entry: Entry) -> FileInfo:
    return FileInfo(
        entry.path, entry.kind_name, entry.size, entry.mode, entry.mtime_ns, entry.target
    )


@contextmanager
def opened(
    ctx: Context, name: str, number: int | None
) -> Iterator[tuple[VersionInfo, ManifestReader]]:
    """The readable version and its open manifest, closed on exit."""
    version = readable_version(ctx, name, number)
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
        return version, [_info(e) for e in manifest.listdir(entry.path)]


def stat_path(
    ctx: Context, name: str, number: int | None, path: str, *, follow: bool = False
) -> FileInfo:
    """Metadata of one path in a version; with ``follow``, of what a symlink points to."""
    with opened(ctx, name, number) as (_version, manifest):
        return _info(manifest.resolve(path) if follow else manifest.stat(path))


def _file_blobs(
    ctx: Context, name: str, number: int | None, path: str
) -> tuple[Entry, list[BlobLocation]]:
    """Resolve a regular file of a version (symlinks followed inside it) to its blobs."""
    with opened(ctx, name, number) as (version, manifest):
        entry = manifest.resolve(path)
        if entry.kind != FILE:
            raise PathNotFoundError(f"{path} is not a file in {version.ref}", path=path)
        return entry, manifest.blobs(entry)


def read_file(ctx: Context, name: str, number: int | None, path: str) -> Iterator[bytes]:
    """Stream the bytes of a regular file (symlinks are followed inside the version), each
    blob verified against its BLAKE3 id before it is yielded.

    Raises:
        PathNotFoundError: no such file, or the path is a directory.
        IntegrityError: stored bytes are damaged; nothing wrong is ever yielded.
    """
    _entry, blobs = _file_blobs(ctx, name, number, path)
    return (ctx.store.read_blob(loc) for loc in blobs)


def open_file(ctx: Context, name: str, number: int | None, path: str) -> io.BufferedReader:
    """A seekable binary file object over a file of a version (symlinks followed inside it).

    Raises:
        PathNotFoundError: no such file, or the path is a directory.
    """
    entry, blobs = _file_blobs(ctx, name, number, path)
    return io.BufferedReader(BlobFile(ctx.store, blobs, name=entry.path), buffer_size=1 << 20)


def iter_files(
    ctx: Context, name: str, number: int | None, prefix: str = ""
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, bytes)`` for every file under ``prefix`` in storage order (packs are read
    sequentially, in large ranged reads): the fast way to consume a whole version."""
    version = readable_version(ctx, name, number)
    manifest = ctx.store.open_manifest(version.manifest_id)
    return _iter(ctx, manifest, prefix)


def _iter(ctx: Context, manifest: ManifestReader, prefix: str) -> Iterator[tuple[str, bytes]]:
    try:
        yield from stream_files(ctx.store, manifest, prefix)
    finally:
        manifest.close()
