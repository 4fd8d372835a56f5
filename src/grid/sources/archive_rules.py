"""What an archive may hold: the bounds that refuse a decompression bomb, and the rule that
turns a member's name into a path inside the version (or refuses it)."""

from __future__ import annotations

from dataclasses import dataclass

from grid.errors import ArchiveError

RATIO_FLOOR = 1 << 20  # ratios are judged against at least this many compressed bytes


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that refuse a decompression bomb: total bytes of the files, number of entries,
    and expanded bytes per compressed byte."""

    max_bytes: int = 4 << 40
    max_entries: int = 10_000_000
    max_ratio: float = 250.0


def clean_path(name: str) -> str:
    """The relative path an archive member stands for ('' for the root itself).

    Raises:
        ArchiveError: an absolute path, a ``..`` component, a NUL or a name not in UTF-8.
    """
    if "\0" in name:
        raise ArchiveError(f"archive entry {name!r} has a NUL in its name", path=name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArchiveError(f"archive entry {name!r} is not named in UTF-8", path=name) from exc
    if name.startswith("/") or (len(name) > 2 and name[1] == ":" and name[2] in "/\\"):
        raise ArchiveError(f"archive entry {name!r} has an absolute path", path=name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"archive entry {name!r} climbs out with '..'", path=name)
    for part in parts:
        if len(part.encode()) > 255:
            raise ArchiveError(f"archive entry {name!r} has a name over 255 bytes", path=name)
    return "/".join(parts)
