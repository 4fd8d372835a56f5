"""An archive's bytes read the way a create reads an upload: every entry, every file's content."""

from __future__ import annotations

import io
import stat

from grid.sources.archive import ArchiveSource


def consume(data: bytes, name: str = "a.tar") -> dict[str, bytes]:
    """Every regular file's content by path (symlinks as ``-> target``)."""
    src = ArchiveSource(f"https://fuzz.invalid/{name}", body=io.BytesIO(data), size=len(data))
    out: dict[str, bytes] = {}
    try:
        for entry in src.entries():
            path = f"{entry.parent}/{entry.name}".lstrip("/")
            if stat.S_ISREG(entry.mode):
                with src.open(entry) as f:
                    out[path] = f.read()
            elif entry.target is not None:
                out[path] = b"-> " + entry.target.encode("utf-8", "surrogateescape")
    finally:
        src.close()
    return out
