"""Uploads sent in parts (a browser's): a tar stream cut into numbered parts of ``PART_SIZE``
bytes, each stored as it arrives, then imported as the next version like an archive URL.

An upload is named by its datastore and a fingerprint of what is sent (the browser's list of
paths, sizes and times), so starting the same upload again, after a dropped connection or a
reloaded page, finds the parts already stored and only the rest is sent. From its start the
upload holds its version (status ``uploading``, progress in bytes) with a lease that every part
renews; a version lost meanwhile (the lease lapsed and a newer version failed it, or it was
deleted) is replaced by a new one and the stored parts still count. Finishing hands the
version to the import (``INTERRUPTED``: a create of the same source takes it over), which
reads the parts in order as one archive; the parts are deleted once the version succeeded.

Objects, under the owner's part of the storage: ``uploads/ID/upload.json`` and
``uploads/ID/parts/NNNNNN``.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import asdict, dataclass

from grid.errors import ConflictError, GridError, NotFoundError, UsageError
from grid.objects import ObjectStore
from grid.records import INTERRUPTED, UNFINISHED, Lease
from grid.service.catalog_port import CatalogPort
from grid.sources.factory import StagedArchive

PART_SIZE = 8 * 1024 * 1024
LEASE_SECONDS = 15 * 60.0  # a browser away longer loses the version (not the parts)
MAX_PARTS = 1_000_000
_ROOT = "uploads"


@dataclass
class Upload:
    """What is being sent, where its parts go and which version it fills."""

    id: str
    name: str
    size: int
    files: int
    label: str
    number: int
    finishing: bool = False

    @property
    def parts(self) -> int:
        return max(1, -(-self.size // PART_SIZE))

    @property
    def source(self) -> str:
        """The version's source (the same for every try of this upload: the import resumes
        by it)."""
        return f"upload {self.id[:12]}: {self.label} ({self.files:,} files)"

    @property
    def lease(self) -> Lease:
        return Lease(f"upload {self.id[:12]}", 0, LEASE_SECONDS)

    def part_length(self, n: int) -> int:
        return min(PART_SIZE, self.size - n * PART_SIZE)


class StagedUploads:
    """One owner's uploads in parts, over their catalog and their part of the storage."""

    def __init__(self, catalog: CatalogPort, objects: ObjectStore, owner: str) -> None:
        self._catalog, self._objects, self._owner = catalog, objects, owner

    def start(self, name: str, size: int, files: int, fingerprint: str, label: str) -> Upload:
        """The upload of ``size`` bytes for ``name`` with this ``fingerprint``: the one
        already begun (its parts kept), else a new one holding a new version."""
        if not 0 < size <= PART_SIZE * MAX_PARTS or files < 1:
            raise UsageError(
                f"an upload of {size} bytes and {files} files cannot be stored",
                rule="send at least one file, and less than 8 TiB",
            )
        digest = hashlib.sha256(f"{self._owner}\0{name}\0{size}\0{fingerprint}".encode())
        upload_id = digest.hexdigest()[:32]
        try:
            upload = self.get(upload_id)
        except NotFoundError:
            upload = Upload(upload_id, name, size, files, label[:200], 0)
        if upload.finishing and self._status(upload) in UNFINISHED:
            return upload  # being imported: nothing to send
        self._hold(upload)
        return upload

    def _status(self, upload: Upload) -> str | None:
        """The status of the upload's version (None: there is none)."""
        try:
            v = self._catalog.version(upload.name, upload.number)
        except GridError:
            return None
        return v.status if v.source == upload.source else None

    def get(self, upload_id: str) -> Upload:
        """Upload ``upload_id``.

        Raises:
            NotFoundError: there is none (never begun, finished or abandoned).
        """
        if len(upload_id) != 32 or not all(c in "0123456789abcdef" for c in upload_id):
            raise NotFoundError(f"no upload {upload_id[:40]!r}", name=upload_id[:40])
        try:
            meta = json.loads(self._objects.get(self._meta(upload_id)))
        except NotFoundError:
            raise NotFoundError(f"no upload {upload_id!r}", name=upload_id) from None
        return Upload(**meta)

    def received(self, upload: Upload) -> list[int]:
        """The numbers of the parts stored, whole."""
        done = []
        for info in self._objects.list(f"{_ROOT}/{upload.id}/parts/"):
            n = int(info.key.rsplit("/", 1)[-1])
            if n < upload.parts and info.size == upload.part_length(n):
                done.append(n)
        return sorted(done)

    def put_part(self, upload: Upload, n: int, data: bytes) -> int:
        """Store part ``n``; renew the version's hold and record the bytes received; return
        them.

        Raises:
            UsageError: no such part, or not its length.
            ConflictError: the upload is being imported.
        """
        self._check_part(upload, n, len(data))
        self._objects.put(self._part(upload.id, n), [data])
        return self._received_bytes(upload)

    def part_url(self, upload: Upload, n: int, seconds: int) -> str | None:
        """A URL a browser PUTs part ``n`` to, straight to the store (None: the store has
        none; the part goes through ``put_part``)."""
        return self._objects.presign(self._part(upload.id, n), "PUT", seconds)

    def stored(self, upload: Upload, n: int) -> int:
        """Part ``n`` was sent to its URL: check it is there, whole; like ``put_part``.

        Raises:
            UsageError: it is missing or not its length.
        """
        try:
            size = self._objects.size(self._part(upload.id, n))
        except NotFoundError:
            raise UsageError(
                f"part {n} is not in the store: send it again",
                rule="PUT the part to its URL before saying it is stored",
            ) from None
        self._check_part(upload, n, size)
        return self._received_bytes(upload)

    def _check_part(self, upload: Upload, n: int, length: int) -> None:
        if upload.finishing:
            raise ConflictError("this upload is complete and being stored as a version")
        if not 0 <= n < upload.parts or length != upload.part_length(n):
            raise UsageError(
                f"part {n} of this upload must be {upload.part_length(n)} bytes, not {length}"
                if 0 <= n < upload.parts
                else f"this upload has parts 0 to {upload.parts - 1}, not {n}",
                rule="send the parts the upload's start told",
            )

    def _received_bytes(self, upload: Upload) -> int:
        """Renew the version's hold and record the bytes received; return them."""
        if not self._catalog.renew(upload.name, upload.number, upload.lease):
            self._hold(upload)
        done = sum(upload.part_length(i) for i in self.received(upload))
        self._catalog.set_progress(upload.name, upload.number, done, upload.size)
        return done

    def finish(self, upload: Upload) -> StagedArchive:
        """Hand the version to the import that reads the parts (all must be stored).

        Raises:
            UsageError: parts are missing.
        """
        missing = upload.parts - len(self.received(upload))
        if missing:
            raise UsageError(
                f"{missing} of the upload's {upload.parts} parts are missing",
                rule="send every part before finishing",
            )
        if not upload.finishing:
            self._hold(upload)
            upload.finishing = True
            self._save(upload)
            self._catalog.set_status(upload.name, upload.number, INTERRUPTED, lease=upload.lease)
        return StagedArchive(
            lambda: io.BufferedReader(_Parts(self._objects, upload), 1 << 20), upload.size
        )

    def remove(self, upload: Upload) -> None:
        """Delete the upload's parts and record (its version succeeded, or it is dropped)."""
        for info in list(self._objects.list(f"{_ROOT}/{upload.id}/")):
            self._objects.delete(info.key)

    def _hold(self, upload: Upload) -> None:
        """Make sure the upload holds an unfinished version (saving the record if it
        changed)."""
        if upload.number and self._status(upload) in UNFINISHED:
            if self._catalog.renew(upload.name, upload.number, upload.lease):
                return
            taken = self._catalog.resume_version(
                upload.name, upload.source, uuid.uuid4().hex, upload.lease, lambda _v: True
            )
            if taken is not None:
                upload.number, upload.finishing = taken.number, False
                self._save(upload)
                return
        v = self._catalog.new_version(upload.name, upload.source, uuid.uuid4().hex, upload.lease)
        upload.number, upload.finishing = v.number, False
        self._save(upload)

    def _save(self, upload: Upload) -> None:
        self._objects.put(self._meta(upload.id), [json.dumps(asdict(upload)).encode()])

    @staticmethod
    def _meta(upload_id: str) -> str:
        return f"{_ROOT}/{upload_id}/upload.json"

    @staticmethod
    def _part(upload_id: str, n: int) -> str:
        return f"{_ROOT}/{upload_id}/parts/{n:06d}"


class _Parts(io.RawIOBase):
    """The parts of an upload read in order as one stream."""

    def __init__(self, objects: ObjectStore, upload: Upload) -> None:
        super().__init__()
        self._objects, self._upload = objects, upload
        self._next, self._buffer = 0, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._buffer and self._next < self._upload.parts:
            key = StagedUploads._part(self._upload.id, self._next)
            self._buffer = memoryview(self._objects.get(key))
            self._next += 1
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n
