"""Ingest: turn a source's entries into packs, index rows and a manifest, using every core.

Pipeline (every queue bounded, so memory is bounded whatever the tree's size):
  walker thread    walk and stat; read large files and cut them into CDC chunks
  worker threads   read small files whole, BLAKE3 + compress-if-it-pays, a batch at a time
  calling thread   dedup against the index, append to the open pack, write manifest rows
  uploader threads store full packs (the disk write starts, nobody waits for it)
  syncer thread    a few packs later, waits until a pack is durable, then indexes its blobs
Batches, not single files, cross thread boundaries; hashing, compression, reads and writes
release the GIL, so they overlap.

With a ``FileState``, the walker looks up each window of listed files: a file remembered under
the same (size, mtime, inode, ctime) is not read at all; its blob locations go straight to the
consumer, which uses them if their packs are still indexed and whole (else it reads the file).
Batches with nothing to read skip the worker threads.

A ``sequential`` source (an archive stream) can give a file's content only while that file is
the entry last listed: its files are all read by the walker, as they are listed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from grid.errors import NotFoundError
from grid.ids import TreeHasher
from grid.store.chunker import SMALL_FILE_MAX, SegmentPool, iter_chunks
from grid.store.filestate import RACY_NS, FileState, Key, StoredBlob, encode_ref
from grid.store.index import BlobRef
from grid.store.manifest import DIR, FILE, ROOT_ID, SYMLINK, encode_blobs
from grid.store.manifest_writer import ManifestWriter
from grid.store.pack import ENTRY, FRAME_BYTES, PackBuilder, pack_key
from grid.store.source_reading import (
    GONE,
    READ,
    UNCHANGED,
    VANISHED,
    Digested,
    Item,
    Unchanged,
    digest_batch,
    fingerprint,
    is_bytes,
    read_small_file,
    source_error,
    torn,
)
from grid.tree import Source, SourceEntry

if TYPE_CHECKING:
    from grid.store.repository import Store

# Small files are read by the workers, so several reads are in flight: cold, three workers read
# `small` at ~9,200 files/s against ~8,000 for one reader thread (four: ~10,000, but 10% slower
# warm, where the GIL is the limit).
WORKERS = 3
_BATCH_BYTES = 4 << 20
_BATCH_ITEMS = 256
_UPLOADERS = 2
_POLL = 0.2
# Packs stored but not yet known durable; their writeback overlaps with ingesting later ones.
_SYNC_LAG = 8
_WINDOW = 512  # listed entries looked up in the file state at once
_REMEMBER_EVERY = 4096  # files recorded in the file state per transaction
# A pack is also shipped at this many blobs: 32 MiB of 40-byte files would be 800,000 blobs,
# each held in memory (pack, pending locations) until the pack is indexed.
PACK_MAX_BLOBS = 16384


@dataclass
class IngestStats:
    """What an ingest did; ``stored_bytes`` counts only bytes new to the store."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    stored_bytes: int = 0
    new_blobs: int = 0
    dedup_blobs: int = 0
    packs: int = 0
    unchanged_files: int = 0  # recognised from the file state, not read
    tree_digest: str = ""  # see grid.ids.TreeHasher


Progress = Callable[[IngestStats], None]
_Done = object()


def ingest(
    source: Source,
    store: Store,
    manifest: ManifestWriter,
    *,
    workers: int = WORKERS,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    state: FileState | None = None,
    rehash: bool = False,
    holder: str | None = None,
) -> IngestStats:
    """Store every entry of ``source`` and describe it in ``manifest`` (not yet finished).

    Packs stored before a failure stay in the store and indexed, so a re-run dedups against them.
    With ``state``, files unchanged since they were last stored are not read (unless
    ``rehash``), and files read are remembered there. With ``holder``, every pack written or
    referenced is leased to it first (see ``BlobIndex.lease``).

    Raises:
        SourceError: a file or folder could not be read (named in the message).
        StorageError: the object store failed (NoSpaceError when the disk is full).
    """
    return _Ingest(source, store, manifest, workers, progress, warn, state, rehash, holder).run()


class _Ingest:
    def __init__(
        self,
        source: Source,
        store: Store,
        manifest: ManifestWriter,
        workers: int,
        progress: Progress | None,
        warn: Callable[[str], None] | None = None,
        state: FileState | None = None,
        rehash: bool = False,
        holder: str | None = None,
    ) -> None:
        self.source, self.store, self.manifest = source, store, manifest
        self.sequential = source.sequential
        self.state, self.rehash, self.holder = state, rehash, holder
        self.remembered: list[tuple[str, str, Key, bytes]] = []
        self.pack_bytes: dict[int, bytes] = {}  # manifest pack number -> the id's 16 bytes
        self.racy_after = time.time_ns() - RACY_NS
        self.progress = progress
        self.warn = warn or (lambda _message: None)
        self.stats = IngestStats()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="grid-hash")
        self.workers = self.limit = workers  # batches read at once: see _digested
        self.running = 0
        self.slots = threading.Condition()
        self.batches: queue.Queue[Any] = queue.Queue(maxsize=workers + 1)
        self.uploads: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.syncs: queue.Queue[Any] = queue.Queue(maxsize=_SYNC_LAG)
        self.stop = threading.Event()
        self.upload_error: BaseException | None = None
        self.pending: dict[bytes, tuple[str, int, int, int, int]] = {}
        self.pack_ok: dict[str, bool] = {}
        self.pack = self._new_pack()
        self.dir_ids: dict[str, int] = {"": ROOT_ID}
        self.blobs: list[tuple[int, bytes, int, int, int, int]] = []
        self.counted = 0  # bytes of the current file's blobs already in stats.bytes
        self.segments = SegmentPool(keep=8)
        self.batch: list[Item] = []
        self.batch_size = 0
        self.tree = TreeHasher()

    # -- walker thread ---------------------------------------------------------------------
    def _offer(self, item: Any) -> bool:
        """Queue ``item`` for the consumer; False if the ingest is stopping."""
        while not self.stop.is_set():
            try:
                self.batches.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _submit(self, batch: list[Item]) -> bool:
        """Hand ``batch`` to a worker once fewer than ``limit`` batches are being read."""
        with self.slots:
            while self.running >= self.limit and not self.stop.is_set():
                self.slots.wait(_POLL)
            self.running += 1
        future = self.pool.submit(digest_batch, self.source, batch, self.warn)
        future.add_done_callback(self._digested)
        return self._offer(future)

    def _digested(self, future: Future[Digested]) -> None:
        """A worker finished a batch: read the next ones in parallel only if this one had to
        wait for the disk. From the page cache one worker is faster: more only trade the GIL
        (on `small`, warm: 6.9 s with one against 8.0 s with three, 97,000 context switches
        against 217,000; cold, three are 1.3-2 x faster)."""
        with self.slots:
            self.running -= 1
            if not future.cancelled() and future.exception() is None:
                self.limit = self.workers if future.result().from_disk else 1
            self.slots.notify_all()

    def _walk(self) -> None:
        try:
            window: list[SourceEntry] = []
            # A sequential source's file can be read only while it is the entry last listed.
            size = 1 if self.sequential else _WINDOW
            for entry in self.source.entries():
                if self.stop.is_set():
                    return
                window.append(entry)
                if len(window) >= size:
                    if not self._walk_window(window):
                        return
                    window = []
            if self._walk_window(window) and (not self.batch or self._flush_batch()):
                self._offer(_Done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._offer(exc)

    def _walk_window(self, window: list[SourceEntry]) -> bool:
        """Queue a window of listed entries; False if the ingest is stopping."""
        unchanged = self._unchanged(window)
        for entry in window:
            if self.stop.is_set():
                return False
            if stat.S_ISREG(entry.mode) and entry.size > 0:
                refs = unchanged.get(entry.location)
                if refs is not None:
                    if not self._add((entry, Unchanged(refs), True), 0):
                        return False
                    continue
                for item in self._pieces(entry, self.segments):
                    data = item[1]
                    size = entry.size if data is READ else len(data) if is_bytes(data) else 0
                    if not self._add(item, size):
                        return False
            elif not self._add((entry, None, True), 0):
                return False
        return True

    def _add(self, item: Item, size: int) -> bool:
        self.batch.append(item)
        self.batch_size += size
        if self.batch_size >= _BATCH_BYTES or len(self.batch) >= _BATCH_ITEMS:
            return self._flush_batch()
        return True

    def _flush_batch(self) -> bool:
        batch, self.batch, self.batch_size = self.batch, [], 0
        if any(item[1] is READ or is_bytes(item[1]) for item in batch):
            return self._submit(batch)
        done: Future[list[Any]] = Future()  # nothing to read or hash: no worker needed
        done.set_result(digest_batch(self.source, batch, self.warn))
        return self._offer(done)

    def _unchanged(self, window: list[SourceEntry]) -> dict[str, list[StoredBlob]]:
        """Files of ``window`` the file state knows under the same key: location -> blobs."""
        if self.state is None or self.rehash:
            return {}
        folders: dict[str, dict[str, Key]] = {}
        for e in window:
            if stat.S_ISREG(e.mode) and e.size > 0 and e.ino:
                folder, name = os.path.split(e.location)
                folders.setdefault(folder, {})[name] = (e.size, e.mtime_ns, e.ino, e.ctime_ns)
        found: dict[str, list[StoredBlob]] = {}
        for folder, files in folders.items():
            for name, blobs in self.state.lookup(folder, files).items():
                if blobs:
                    found[os.path.join(folder, name)] = blobs
        return found

    def _pieces(self, entry: SourceEntry, segments: SegmentPool) -> Any:
        if entry.size <= SMALL_FILE_MAX:
            yield (
                entry,
                read_small_file(self.source, entry, self.warn) if self.sequential else READ,
                True,
            )
            return
        try:
            f = self.source.open(entry)
        except FileNotFoundError:
            yield (entry, VANISHED, True)
            return
        try:
            with f:
                before = fingerprint(f)
                prev = None
                for chunk in iter_chunks(f, segments):
                    if prev is not None:
                        yield (entry, prev, False)
                    prev = chunk
                if before != fingerprint(f):
                    self.warn(torn(entry))  # too big to read twice; a re-run reads it again
                yield (entry, prev, True)
        except OSError as exc:
            raise source_error(entry, exc) from exc

    # -- uploader threads ------------------------------------------------------------------
    def _upload(self) -> None:
        while True:
            item = self.uploads.get()
            if item is None:
                return
            if self.upload_error is not None:
                continue  # drain without work so the consumer never blocks
            pack, parts = item
            try:
                pack.size = self.store.put_pack(pack.pack_id, parts)
                pack.parts = []  # let the read segments go
                self.syncs.put(pack)
            except BaseException as exc:
                self.upload_error = exc
                self.stop.set()

    def _sync(self) -> None:
        """Index packs once durable, in order: an indexed blob is always safely stored."""
        while True:
            pack = self.syncs.get()
            if pack is None:
                return
            # Index a stored pack even after another one failed: a re-run then skips its blobs.
            try:
                self.store.objects.sync([pack_key(pack.pack_id)])
                self.store.index.add_pack(pack.pack_id, pack.size, pack.blobs)
                for blob in pack.blobs:
                    self.pending.pop(blob.digest, None)
            except BaseException as exc:
                self.upload_error = exc
                self.stop.set()

    def _ship(self) -> None:
        if not self.pack.blobs:
            return
        self._raise_upload_error()
        self.stats.packs += 1
        self.stats.stored_bytes += FRAME_BYTES
        item = (self.pack, self.pack.finish())
        self.pack = self._new_pack()
        while True:
            try:
                self.uploads.put(item, timeout=_POLL)
                return
            except queue.Full:
                self._raise_upload_error()

    def _raise_upload_error(self) -> None:
        if self.upload_error is not None:
            raise self.upload_error

    # -- consumer (calling thread) -----------------------------------------------------------
    def _known(
        self, digest: bytes, hits: dict[bytes, BlobRef]
    ) -> tuple[str, int, int, int, int] | None:
        ref = self.pending.get(digest)
        if ref is not None:
            return ref
        hit = hits.get(digest)
        if hit is None:
            return None
        ok = self.pack_ok.get(hit.pack_id)
        if ok is None:
            ok = self.pack_ok[hit.pack_id] = self._pack_intact(hit.pack_id, hit.pack_size)
        return hit[:5] if ok else None

    def _new_pack(self) -> PackBuilder:
        pack = PackBuilder()
        if self.holder is not None:
            self.store.index.lease(self.holder, [pack.pack_id])
        return pack

    def _pack_intact(self, pack_id: str, size: int | None) -> bool:
        """Trust a pack only if it is indexed and stored whole (cheap: one stat per pack);
        ``size`` is its indexed size if already known.

        The pack is leased first and then looked up again: a gc that removed it before the
        lease is seen here; one that runs after it keeps the pack."""
        if self.holder is not None:
            self.store.index.lease(self.holder, [pack_id])
        if self.holder is not None or size is None:
            size = self.store.index.pack_sizes([pack_id]).get(pack_id)
            if size is None:
                return False
        try:
            if self.store.objects.size(pack_key(pack_id)) == size:
                return True
        except NotFoundError:
            pass
        self.store.index.forget_pack(pack_id)
        return False

    def _place(
        self, digest: bytes, payload: Any, codec: int, raw_length: int, hits: dict[bytes, BlobRef]
    ) -> None:
        ref = self._known(digest, hits)
        if ref is None:
            blob = self.pack.add(digest, payload, raw_length, codec)
            ref = (self.pack.pack_id, blob.offset, blob.stored_length, raw_length, codec)
            self.pending[digest] = ref
            self.stats.stored_bytes += blob.stored_length + ENTRY.size  # its trailer entry too
            self.stats.new_blobs += 1
            if self.pack.full or len(self.pack.blobs) >= PACK_MAX_BLOBS:
                self._ship()
        else:
            self.stats.dedup_blobs += 1
        pack_id, offset, stored, raw, cod = ref
        self.blobs.append((self.manifest.pack_number(pack_id), digest, offset, stored, raw, cod))
        self.stats.bytes += raw_length  # as they go: a 10 GB file shows progress while read
        self.counted += raw_length

    def _drop_file(self) -> None:
        """Forget the blobs placed so far for a file that is left out."""
        self.blobs = []
        self.stats.bytes -= self.counted
        self.counted = 0

    def _place_unchanged(self, refs: list[StoredBlob]) -> bool:
        """Reference an unchanged file's blobs where they are; False if a pack went missing."""
        for ref in refs:
            ok = self.pack_ok.get(ref.pack_id)
            if ok is None:
                ok = self.pack_ok[ref.pack_id] = self._pack_intact(ref.pack_id, None)
            if not ok:
                return False
        number = self.manifest.pack_number
        self.blobs.extend(
            (number(r.pack_id), r.digest, r.offset, r.stored_length, r.raw_length, r.codec)
            for r in refs
        )
        self.stats.dedup_blobs += len(refs)
        return True

    def _read_here(self, entry: SourceEntry) -> None:
        """Read a file on this thread (rare: its remembered blobs' pack has gone missing)."""
        for piece in self._pieces(entry, SegmentPool(keep=2)):
            for _, digest, payload, codec, raw_length, _ in digest_batch(
                self.source, [piece], self.warn
            ):
                if raw_length == GONE:
                    self.warn(f"skipped {entry.location or entry.path}: deleted while uploading")
                    self._drop_file()
                    return
                if digest is not None:
                    hits = self.store.index.lookup_many([digest])
                    self._place(digest, payload, codec, raw_length, hits)
        self._remember(entry)
        self._emit(entry)

    def _remember(self, entry: SourceEntry) -> None:
        """Note a file just read in the file state (unless it may still be being written)."""
        if self.state is None or not entry.ino:
            return
        if entry.ctime_ns and entry.mtime_ns >= self.racy_after:
            return  # a local file that may still be being written (an S3 object's key is its ETag)
        if not stat.S_ISREG(entry.mode):
            return
        key = (entry.size, entry.mtime_ns, entry.ino, entry.ctime_ns)
        packs = self.pack_bytes
        refs = b""
        for number, digest, offset, stored, raw, codec in self.blobs:
            pack = packs.get(number)
            if pack is None:
                pack = packs[number] = bytes.fromhex(self.manifest.pack_id(number))
            refs += encode_ref(digest, pack, offset, stored, raw, codec)
        folder, name = os.path.split(entry.location)
        self.remembered.append((folder, name, key, refs))
        if len(self.remembered) >= _REMEMBER_EVERY:
            self._flush_state()

    def _flush_state(self) -> None:
        if self.state is not None and self.remembered:
            rows, self.remembered = self.remembered, []
            self.state.remember(rows)

    def _emit(self, entry: SourceEntry) -> None:
        parent = self.dir_ids[entry.parent]
        mode = entry.mode
        if stat.S_ISDIR(mode):
            kind, size = DIR, 0
            self.dir_ids[entry.path] = self.manifest.add(
                parent, entry.name, DIR, 0, mode, entry.mtime_ns
            )
            self.stats.dirs += 1
        elif stat.S_ISLNK(mode):
            kind, size = SYMLINK, entry.size
            self.manifest.add(
                parent, entry.name, SYMLINK, entry.size, mode, entry.mtime_ns, entry.target
            )
            self.stats.symlinks += 1
        else:
            kind, size = FILE, sum(b[4] for b in self.blobs)
            self.manifest.add(
                parent, entry.name, FILE, size, mode, entry.mtime_ns, None, encode_blobs(self.blobs)
            )
            self.stats.files += 1
            self.stats.bytes += size - self.counted
        self.counted = 0
        digests = [b[1] for b in self.blobs]
        self.tree.add(entry.path, kind, mode, entry.mtime_ns, size, entry.target, digests)
        self.blobs = []

    def _consume(self) -> None:
        while True:
            try:
                item = self.batches.get(timeout=_POLL)
            except queue.Empty:
                # an uploader failure stops the reader before it can post _Done
                self._raise_upload_error()
                continue
            if item is _Done:
                return
            if isinstance(item, BaseException):
                raise item
            fut: Future[list[Any]] = item
            results = fut.result()
            hits = self.store.index.lookup_many([r[1] for r in results if r[1] is not None])
            for entry, digest, payload, codec, raw_length, last in results:
                if raw_length == UNCHANGED:
                    if self._place_unchanged(payload.refs):
                        self.stats.unchanged_files += 1
                        self._emit(entry)
                    else:
                        self._read_here(entry)
                    continue
                if digest is not None:
                    self._place(digest, payload, codec, raw_length, hits)
                if last and raw_length == GONE:
                    self.warn(f"skipped {entry.location or entry.path}: deleted while uploading")
                    self._drop_file()
                elif last:
                    self._remember(entry)
                    self._emit(entry)
            self._raise_upload_error()
            if self.progress is not None:
                self.progress(self.stats)

    def run(self) -> IngestStats:
        reader = threading.Thread(target=self._walk, name="grid-walk", daemon=True)
        uploaders = [
            threading.Thread(target=self._upload, name=f"grid-upload-{i}", daemon=True)
            for i in range(_UPLOADERS)
        ]
        syncer = threading.Thread(target=self._sync, name="grid-sync", daemon=True)
        for t in (reader, *uploaders, syncer):
            t.start()
        try:
            self._consume()
            self._ship()
        except BaseException:
            self.stop.set()
            self.source.cancel()  # the walker may be waiting on a stalled download
            raise
        finally:
            self._shutdown(reader, uploaders, syncer)
            self._flush_state()
        self._raise_upload_error()
        self.stats.tree_digest = self.tree.hexdigest()
        return self.stats

    def _shutdown(
        self, reader: threading.Thread, uploaders: list[threading.Thread], syncer: threading.Thread
    ) -> None:
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                self.batches.get(timeout=_POLL)  # unblock a reader waiting on a full queue
        self.pool.shutdown(wait=True, cancel_futures=True)
        for _ in uploaders:
            self.uploads.put(None)
        for t in uploaders:
            t.join()
        self.syncs.put(None)
        syncer.join()
