"""Opening a zip and its members: the archive spooled to disk when it cannot be read by Range
requests, each member's name and time as its writer meant them, its content opened with
local-header problems refused, and bombs, encryption and unsupported compression methods
refused before a byte is inflated."""

from __future__ import annotations

import calendar
import errno
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any, BinaryIO

from grid.errors import ArchiveError, GridError, storage_error
from grid.sources.archive_rules import RATIO_FLOOR, ArchiveLimits, shown, time_ns

_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_METHOD_NAMES = {
    1: "Shrink",
    6: "Implode",
    9: "Deflate64",
    93: "Zstandard",
    95: "xz",
    96: "JPEG",
    97: "WavPack",
    98: "PPMd",
    99: "WinZip AES encryption",
}


def zip_name(info: zipfile.ZipInfo) -> str:
    """A member's name: zip tools often store UTF-8 without flagging it, and zipfile then
    decodes it as cp437; undo that when the bytes are valid UTF-8 (as unzip does).

    Raises:
        ArchiveError: the name is empty (zipfile fails on it with an IndexError).
    """
    if not info.filename:
        raise ArchiveError("the zip archive has an entry with no name: it is corrupt")
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


def zip_mtime(info: zipfile.ZipInfo) -> int:
    """A member's DOS time in ns; impossible fields (month 0, day 31 of February, hour 31),
    which a corrupt or careless writer leaves, are brought into range rather than refused."""
    year, month, day, hour, minute, second = info.date_time
    month = min(max(month, 1), 12)
    day = min(max(day, 1), calendar.monthrange(year, month)[1])
    when = datetime(year, month, day, min(hour, 23), min(minute, 59), min(second, 59))
    return time_ns(when.timestamp())


def open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> IO[bytes]:
    """A member's content. Its local header is read here: a wrong signature, a name that
    differs from the central directory's or a method zipfile lacks refuses the archive."""
    try:
        return zf.open(info)
    except GridError:
        raise  # the download failed
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: a seek before the start, where it points
            raise storage_error(exc, "read the spooled zip") from exc
        raise ArchiveError(
            f"archive entry {shown(name)}: the zip archive is corrupt", path=name
        ) from exc
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, ValueError) as exc:
        detail = str(exc)
        detail = detail if len(detail) <= 300 else detail[:300] + "…"
        raise ArchiveError(
            f"archive entry {shown(name)} cannot be read, the zip archive is corrupt: {detail}",
            path=name,
        ) from exc


def check_declared_size(
    infos: list[zipfile.ZipInfo], archive_size: int, limits: ArchiveLimits
) -> None:
    """Refuse a zip whose members declare more than ``limits.max_ratio`` times its size."""
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_ratio * max(archive_size, RATIO_FLOOR):
        raise ArchiveError(
            f"the archive declares {declared} bytes in {archive_size} "
            f"(over {limits.max_ratio:g} times: a decompression bomb?); "
            "raise --max-ratio if it is genuine"
        )


def check_readable(info: zipfile.ZipInfo, name: str, path: str) -> None:
    """Refuse a member that is encrypted, or (unless a folder) compressed by a method zipfile
    lacks."""
    if info.flag_bits & 0x1:
        raise ArchiveError(f"archive entry {shown(name)} is encrypted", path=path)
    if info.compress_type not in _ZIP_METHODS and not info.is_dir():
        method = f"compression method {info.compress_type}"
        if info.compress_type in _ZIP_METHOD_NAMES:
            method += f" ({_ZIP_METHOD_NAMES[info.compress_type]})"
        raise ArchiveError(
            f"archive entry {shown(name)} uses {method}, which is not supported: "
            "re-make the archive with Deflate (the default of zip and of 7-Zip's zip)",
            path=path,
        )


def spool(
    body: BinaryIO, max_bytes: int, spool_dir: str | None, keep: Callable[[Any], object]
) -> tuple[BinaryIO, int]:
    """Copy ``body`` (the archive only) to a temporary file in ``spool_dir``, deleted when
    closed, and hand it to ``keep`` (which closes it later) as soon as it exists; return it,
    at its start, and its size.

    Raises:
        ArchiveError: the archive is over ``max_bytes``.
        StorageError: the disk failed (NoSpaceError when full).
    """
    try:
        if spool_dir:
            os.makedirs(spool_dir, exist_ok=True)
        file = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 (closed by keep's owner)
        keep(file)
        while data := body.read(1 << 20):
            if file.tell() + len(data) > max_bytes:
                raise ArchiveError(
                    f"the archive is larger than {max_bytes} bytes; "
                    "raise --max-size if it is genuine"
                )
            file.write(data)
    except OSError as exc:  # the disk: NoSpaceError when full
        raise storage_error(exc, f"spool the zip to {spool_dir}") from exc
    size = file.tell()
    file.seek(0)
    return file, size


def open_zip(fileobj: IO[bytes]) -> zipfile.ZipFile:
    """``fileobj`` read as a zip archive (its central directory).

    Raises:
        ArchiveError: it is not a zip, or is truncated or corrupt.
    """
    try:
        return zipfile.ZipFile(fileobj)
    # ValueError: a name flagged UTF-8 that is not (UnicodeDecodeError), a negative seek;
    # NotImplementedError: a member needing a newer zip version
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        struct.error,
        NotImplementedError,
    ) as exc:
        raise ArchiveError(f"the zip archive is truncated or corrupt: {exc}") from exc
