"""Checks of stored bytes against what they claim to be: one blob against its id, a whole pack
against its trailer, a manifest object against its zstd frame.

Used by every reader, by a create that recovers the packs of a stopped run, and by a team-mode
server before it accepts packs a client uploaded (which it must not trust).
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Iterator

from grid.errors import GridError, IntegrityError, storage_error
from grid.ids import digest_of
from grid.objects.pinned import is_pin
from grid.store.chunker import MAX_CHUNK
from grid.store.compression import PINNED, decode
from grid.store.manifest import BlobLocation
from grid.store.manifest_object import unpack
from grid.store.manifest_reader import ManifestReader
from grid.store.pack import MAGIC, PackedBlob, parse_trailer, trailer_span


def verify_blob(loc: BlobLocation, payload: bytes) -> bytes:
    """The original bytes of a stored blob, checked against its BLAKE3 id.

    Raises:
        IntegrityError: short, undecodable or not matching the id.
    """
    if len(payload) != loc.stored_length:
        raise IntegrityError(f"blob {loc.digest.hex()} is truncated", digest=loc.digest.hex())
    if loc.codec == PINNED and is_pin(loc.pack_id):  # a referenced object's piece: its pin
        return payload  # was checked by the read (a stored blob saying 255 is refused below)
    data = decode(payload, loc.codec, loc.raw_length)
    if len(data) != loc.raw_length or digest_of(data) != loc.digest:
        raise IntegrityError(
            f"blob {loc.digest.hex()} does not match its id", digest=loc.digest.hex()
        )
    return data


def check_pack(pack_id: str, data: bytes) -> list[PackedBlob]:
    """The blobs of pack ``data``, after checking its layout and every blob in it: blobs lie
    between the magic and the trailer, in order, none bigger than a chunk, each matching its
    id.

    Raises:
        IntegrityError: anything does not hold (the message names the pack).
    """
    try:
        if not data.startswith(MAGIC):
            raise IntegrityError("not a grid pack: magic missing")
        _, trailer_length = trailer_span(data[-12:])
        if trailer_length > len(data) - len(MAGIC):
            raise IntegrityError("pack trailer is longer than the pack")
        blobs = parse_trailer(data)
        end = len(MAGIC)
        for b in blobs:
            if b.offset != end or b.raw_length > MAX_CHUNK:
                raise IntegrityError(f"blob {b.digest.hex()} is out of place in the pack")
            end = b.offset + b.stored_length
            loc = BlobLocation(pack_id, b.digest, b.offset, b.stored_length, b.raw_length, b.codec)
            verify_blob(loc, data[b.offset : end])
        if end != len(data) - trailer_length:
            raise IntegrityError("pack holds bytes its trailer does not list")
    except IntegrityError as exc:
        raise IntegrityError(f"pack {pack_id}: {exc.message}", pack=pack_id) from exc
    return blobs


@contextlib.contextmanager
def unpacked_manifest(data: bytes, scratch: str) -> Iterator[ManifestReader]:
    """Manifest object ``data`` unpacked into a file of its own in ``scratch`` and opened;
    the file goes when the block ends.

    Raises:
        IntegrityError: damaged, truncated or no manifest (FormatVersionError: a newer one).
        StorageError: ``scratch`` cannot be written.
    """
    path = os.path.join(scratch, f"manifest-{uuid.uuid4().hex}")
    try:
        os.makedirs(scratch, exist_ok=True)
        with open(path, "wb") as dst:
            unpack(io.BytesIO(data), dst)  # a delta, needing a base, is refused
        reader = ManifestReader(path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(exc, OSError):
            raise storage_error(exc, f"unpack a manifest in {scratch}") from exc
        if isinstance(exc, Exception) and not isinstance(exc, GridError):
            raise IntegrityError(f"damaged manifest: {exc}") from exc  # zstd, a malformed field
        raise
    try:
        yield reader
    finally:
        reader.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
