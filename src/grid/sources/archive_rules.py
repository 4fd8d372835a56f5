"""What a source may hold: the bounds that refuse a decompression bomb, the rule that turns an
archive member's name or an S3 key into a path inside the version (or refuses it), and the
range times are clamped to."""

from __future__ import annotations

import math
from dataclasses import dataclass

from grid.errors import ArchiveError

RATIO_FLOOR = 1 << 20  # ratios are judged against at least this many compressed bytes
MAX_PATH_BYTES = 4096  # a path inside a version (PATH_MAX)
MAX_NAME_BYTES = 255  # one segment of it (NAME_MAX)
MAX_HEADER_BYTES = 1 << 20  # an extended tar header (PAX, GNU long name): read whole, so bounded
_SHOWN_CHARS = 200  # of a name quoted in a message
# mtime_ns is stored as a signed 64-bit integer: about 1677-09-21 to 2262-04-11
MIN_TIME_NS, MAX_TIME_NS = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that refuse a decompression bomb: total bytes of the files (holes of sparse
    files included), number of entries, and expanded bytes per compressed byte."""

    max_bytes: int = 4 << 40
    max_entries: int = 10_000_000
    max_ratio: float = 250.0


def shown(name: str) -> str:
    """``name`` quoted for a message, cut to its first 200 characters (a header may hold a
    name of a megabyte)."""
    return repr(name if len(name) <= _SHOWN_CHARS else name[:_SHOWN_CHARS] + "…")


def time_ns(seconds: float) -> int:
    """A time in seconds as nanoseconds, clamped to what a manifest holds (an archive may say
    1e300 or -1e14; GNU tar clamps such times to its own range when it extracts).

    Raises:
        ValueError: not a number (NaN).
    """
    if math.isnan(seconds):
        raise ValueError("not a number")
    if seconds >= MAX_TIME_NS / 1e9:
        return MAX_TIME_NS
    if seconds <= MIN_TIME_NS / 1e9:
        return MIN_TIME_NS
    ns = int(seconds * 1_000_000_000) if isinstance(seconds, float) else seconds * 1_000_000_000
    return min(max(ns, MIN_TIME_NS), MAX_TIME_NS)  # a float can round past the bound


def check_parts(parts: list[str], name: str, what: str) -> str:
    """The path made of ``parts`` (``name`` as the source spelled it, for messages), if it may
    be stored: every segment at most 255 bytes, the whole at most 4096.

    Raises:
        ArchiveError: a segment or the path too long.
    """
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise ArchiveError(
                f"{what} {shown(name)} has a name over {MAX_NAME_BYTES} bytes", path=name
            )
    path = "/".join(parts)
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise ArchiveError(
            f"{what} {shown(name)} has a path over {MAX_PATH_BYTES} bytes", path=name
        )
    return path


def _check_chars(name: str, what: str) -> None:
    if "\0" in name:
        raise ArchiveError(f"{what} {shown(name)} has a NUL in its name", path=name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArchiveError(f"{what} {shown(name)} is not named in UTF-8", path=name) from exc


def clean_path(name: str, what: str = "archive entry") -> str:
    """The relative path an archive member stands for ('' for the root itself): ``.`` and
    empty segments are dropped (``./a//b/`` is ``a/b``), as tar does.

    Raises:
        ArchiveError: an absolute path, a ``..`` component, a NUL, a name not in UTF-8, a
            segment over 255 bytes or a path over 4096.
    """
    _check_chars(name, what)
    if _absolute(name):
        raise ArchiveError(f"{what} {shown(name)} has an absolute path", path=name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{what} {shown(name)} climbs out with '..'", path=name)
    return check_parts(parts, name, what)


def _absolute(name: str) -> bool:
    return name.startswith("/") or (len(name) > 2 and name[1] == ":" and name[2] in "/\\")


def escapes(name: str) -> bool:
    """Whether ``name`` is absolute or climbs with ``..`` (what ``clean_path`` refuses as
    leading outside, rather than as malformed)."""
    return _absolute(name) or ".." in name.split("/")


def key_path(key: str, rel: str, what: str = "S3 key") -> str:
    """The path an object key stands for, ``rel`` being the key less the source's prefix.

    Keys have no spellings to normalise: an empty segment (``a//b``, ``/a``), ``.`` or ``..``
    would make a path no download can write back, and two keys could then name one path,
    so they are refused. The rest is the archive rule (``clean_path``).

    Raises:
        ArchiveError: naming ``key``.
    """
    _check_chars(key, what)
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            seg = f"a {part!r} segment" if part else "an empty segment ('//' or a leading '/')"
            raise ArchiveError(
                f"{what} {shown(key)} has {seg}: it cannot be a path; rename the object",
                path=key,
            )
    return check_parts(parts, key, what)
