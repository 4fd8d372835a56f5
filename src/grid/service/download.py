"""Download a version into a folder: the same tree, modes, mtimes and symlinks, resumable.

A file is written under a temporary name and renamed once complete, then given its mode and
mtime, so a finished file is one whose size and mtime match the manifest; ``resume`` skips those.
Packs are read in large sequential spans; files are written by a few threads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from grid.errors import IntegrityError, UsageError, storage_error
from grid.records import VersionInfo
from grid.service.context import Context
from grid.service.resolve import readable_version
from grid.store.manifest import DIR, FILE, SYMLINK, BlobLocation, Entry

_BATCH_BYTES = 16 << 20
_WRITERS = 4
_PARTIAL = ".grid-partial"


@dataclass
class DownloadReport:
    version: VersionInfo
    files: int = 0
    skipped: int = 0
    bytes: int = 0


def download(
    ctx: Context,
    name: str,
    number: int | None,
    dest: str,
    *,
    force: bool = False,
    resume: bool = False,
    progress: Callable[[DownloadReport], None] | None = None,
) -> DownloadReport:
    """Materialise a version under ``dest`` (created if missing).

    Raises:
        UsageError: ``dest`` is not empty and neither ``force`` nor ``resume`` was given.
        IntegrityError: stored data is damaged (nothing wrong is written under a final name).
        StorageError: ``dest`` cannot be written (NoSpaceError when the disk is full).
    """
    version = readable_version(ctx, name, number)
    dest = os.path.abspath(dest)
    if os.path.isdir(dest) and os.listdir(dest) and not (force or resume):
        raise UsageError(
            f"{dest} is not empty: pass --resume to finish an earlier download there, or --force "
            "to write into it anyway",
            rule="DEST must be empty or missing",
        )
    report = DownloadReport(version)
    manifest = ctx.store.open_manifest(version.manifest_id)
    dirs: list[tuple[str, Entry]] = []
    try:
        _mkdir(dest)
        with ThreadPoolExecutor(_WRITERS, thread_name_prefix="grid-write") as pool:
            batch: list[tuple[str, Entry, list[BlobLocation]]] = []
            size = 0
            for entry in manifest.walk():
                target = _target(dest, entry)
                if entry.kind == DIR:
                    _mkdir(target)
                    dirs.append((target, entry))
                elif entry.kind == SYMLINK:
                    _symlink(entry, target)
                elif entry.kind == FILE:
                    if resume and _finished(target, entry):
                        report.skipped += 1
                        continue
                    batch.append((target, entry, manifest.blobs(entry)))
                    size += entry.size
                    if size >= _BATCH_BYTES:
                        _write_batch(ctx, pool, batch, report)
                        batch, size = [], 0
                        if progress is not None:
                            progress(report)
            _write_batch(ctx, pool, batch, report)
        for target, entry in reversed(dirs):  # after the files: writing into a dir bumps mtime
            os.chmod(target, entry.mode & 0o7777)
            os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
    except OSError as exc:
        raise storage_error(exc, f"write under {dest}") from exc
    finally:
        manifest.close()
    return report


def _target(dest: str, entry: Entry) -> str:
    parts = entry.path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise IntegrityError(f"manifest holds an unsafe path {entry.path!r}")
    return os.path.join(dest, *parts)


def _mkdir(path: str) -> None:
    if os.path.islink(path):
        os.unlink(path)
    os.makedirs(path, exist_ok=True)


def _symlink(entry: Entry, target: str) -> None:
    if os.path.islink(target) and os.readlink(target) == entry.target:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    os.symlink(entry.target or "", target)
    os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)


def _finished(target: str, entry: Entry) -> bool:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    return st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns


def _write_batch(
    ctx: Context,
    pool: ThreadPoolExecutor,
    batch: list[tuple[str, Entry, list[BlobLocation]]],
    report: DownloadReport,
) -> None:
    data = ctx.store.read_blobs([b for _, _, bl in batch for b in bl])
    futures: list[Future[None]] = []
    i = 0
    for target, entry, bl in batch:
        futures.append(pool.submit(_write_file, target, entry, data[i : i + len(bl)]))
        i += len(bl)
    for fut, (_, entry, _) in zip(futures, batch, strict=True):
        fut.result()
        report.files += 1
        report.bytes += entry.size


def _write_file(target: str, entry: Entry, blocks: list[bytes]) -> None:
    partial = target + _PARTIAL
    with open(partial, "wb") as f:
        f.writelines(blocks)
    os.chmod(partial, entry.mode & 0o7777)
    os.utime(partial, ns=(entry.mtime_ns, entry.mtime_ns))
    os.replace(partial, target)
