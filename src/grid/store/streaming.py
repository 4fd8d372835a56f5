"""Streaming a whole version in storage order (``Client.iter_files``): the manifest's file rows
are read in order, grouped into spans of neighbouring blobs, and worker threads read and verify
each span while the caller consumes the ones before it. Every byte handed out has been checked
against its blob's BLAKE3 id. (Downloads have their own span planner in
``grid.service.download``.)
"""

from __future__ import annotations

import sqlite3
import struct
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from grid.errors import IntegrityError
from grid.store.manifest import BLOB, DIR, FILE, KIND_NAMES, ROOT_ID, BlobLocation
from grid.store.manifest_reader import ManifestReader

if TYPE_CHECKING:
    from grid.store.repository import Store

# Files go to the workers in spans of about this many bytes.
_SPAN = 16 << 20
_AHEAD = 2  # spans fetched ahead of the one being consumed
_WORKERS = 2  # threads fetching and verifying spans


def stream_files(
    store: Store, manifest: ManifestReader, prefix: str = ""
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, content)`` of every regular file under ``prefix`` in storage order.

    Files are handed to worker threads in spans of about 16 MiB of neighbouring blobs; a
    worker reads each blob of its span into a ``bytes`` of its own (``Store.read_blobs``:
    one ``pread`` per blob from the local object directory, one ranged GET per span from
    S3) and checks it against its BLAKE3 id, while the caller consumes the spans before it
    (reads and hashing release the GIL).

    Raises:
        IntegrityError: a blob is damaged or missing (the message and ``path`` name the
            file; every file yielded before it was whole and verified), or the manifest is.
    """
    with ThreadPoolExecutor(_WORKERS, thread_name_prefix="grid-stream") as pool:
        inflight: deque[Future[list[tuple[str, bytes]]]] = deque()
        try:
            for pending in _spans(manifest, prefix):
                inflight.append(pool.submit(fetch_files, store, pending))
                if len(inflight) > _AHEAD:
                    yield from inflight.popleft().result()
            while inflight:
                yield from inflight.popleft().result()
        finally:
            for fut in inflight:
                fut.cancel()


def _spans(manifest: ManifestReader, prefix: str) -> Iterator[list[tuple[str, list[BlobLocation]]]]:
    """The files under ``prefix`` in storage order, in groups of about ``_SPAN`` bytes."""
    pending: list[tuple[str, list[BlobLocation]]] = []
    span = 0
    for _entry_id, path, size, blobs in version_files(manifest, prefix):
        pending.append((path, blobs))
        span += size
        if span >= _SPAN:
            yield pending
            pending, span = [], 0
    if pending:
        yield pending


def version_files(
    manifest: ManifestReader, prefix: str = ""
) -> Iterator[tuple[int, str, int, list[BlobLocation]]]:
    """``(entry id, path, size, blobs)`` of every regular file under ``prefix`` in storage
    order.

    ``manifest.walk()`` and ``manifest.blobs()`` give the same, but build and check an
    ``Entry`` per row, which cost as much CPU as reading the files' bytes back; this reads
    the rows the stream needs from the manifest file (docs/format.md, "Manifest") on a
    connection of its own and checks only what it uses.

    Raises:
        IntegrityError: the manifest is damaged (unreadable, a row of the wrong types, a
            folder missing, a blob in a pack it does not list).
    """
    prefix = prefix.strip("/")
    under = f"{prefix}/"
    try:
        db = sqlite3.connect(
            f"file:{manifest.path}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise IntegrityError(f"manifest is damaged or unreadable: {exc}") from exc
    try:
        packs = dict(db.execute("SELECT no, name FROM packs"))
        dirs: dict[int, str] = {ROOT_ID: ""}
        rows = db.execute("SELECT id, parent, name, kind, size, blobs FROM entries ORDER BY id")
        while batch := rows.fetchmany(1024):
            for entry_id, parent, name, kind, size, raw in batch:
                parent_path = dirs.get(parent)
                if (
                    parent_path is None
                    or type(name) is not str
                    or type(kind) is not int
                    or kind not in KIND_NAMES
                ):
                    raise IntegrityError(f"damaged manifest: entry {entry_id!r:.40} is invalid")
                path = f"{parent_path}/{name}" if parent_path else name
                if kind == DIR:
                    dirs[entry_id] = path
                    continue
                if kind != FILE or (prefix and path != prefix and not path.startswith(under)):
                    continue
                try:
                    blobs = [
                        BlobLocation(packs[no], digest, offset, stored, length, codec)
                        for no, digest, offset, stored, length, codec in BLOB.iter_unpack(
                            raw or b""
                        )
                    ]
                except (KeyError, TypeError, struct.error) as exc:
                    raise IntegrityError(f"damaged manifest: {path} has invalid blobs") from exc
                if type(size) is not int or any(type(b.pack_id) is not str for b in blobs):
                    raise IntegrityError(f"damaged manifest: {path} has invalid fields")
                yield entry_id, path, size, blobs
    except sqlite3.Error as exc:
        raise IntegrityError(f"manifest is damaged or unreadable: {exc}") from exc
    finally:
        db.close()


def fetch_files(
    store: Store,
    pending: list[tuple[str, list[BlobLocation]]],
    named: Callable[[str], str] = str,
) -> list[tuple[str, bytes]]:
    """The files of one span, read and verified (in a worker thread), in the order given;
    their blobs are read in pack order, so that neighbours are read together whatever the
    order asked (a shuffled window of files).

    Raises:
        IntegrityError: a blob is damaged or its pack missing; the message names the file
            (``named(key)`` of its key in ``pending``).
    """
    locs = [b for _, bl in pending for b in bl]
    order = sorted(range(len(locs)), key=lambda i: (locs[i].pack_id, locs[i].offset))
    try:
        if order == list(range(len(locs))):  # storage order: as listed
            fetched = store.read_blobs(locs)
        else:
            fetched = [b""] * len(locs)
            for i, data in zip(order, store.read_blobs([locs[i] for i in order]), strict=True):
                fetched[i] = data
    except IntegrityError as exc:
        path = named(
            next(
                (p for p, bl in pending for b in bl if b.digest.hex() == exc.digest), pending[0][0]
            )
        )
        raise IntegrityError(f"{path}: {exc.message}", **{**exc.attrs, "path": path}) from exc
    out = []
    i = 0
    for path, bl in pending:
        if len(bl) == 1:  # most files: the blob's bytes are the file's
            out.append((path, fetched[i]))
        else:
            out.append((path, b"".join(fetched[i : i + len(bl)])))
        i += len(bl)
    return out
