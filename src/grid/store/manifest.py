"""Manifests: one self-contained SQLite file per version mapping every path to its blobs.
This module holds the format (constants, schema, the records a manifest yields);
``grid.store.manifest_writer`` builds one, ``grid.store.manifest_reader`` queries one, and
``grid.store.manifest_object`` stores one. Layout and invariants: docs/format.md, "Manifest".
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass
from typing import NamedTuple

from grid.errors import IntegrityError

FORMAT_VERSION = "2.0"
PINNED_FORMAT_VERSION = "3.0"  # a manifest that references objects where they are (--no-copy)
FORMAT_MAJOR = 3

DIR, FILE, SYMLINK = 0, 1, 2
KIND_NAMES = {DIR: "dir", FILE: "file", SYMLINK: "symlink"}
ROOT_ID = 0

BLOB = struct.Struct("<I32sIIIB")  # pack number, digest, offset, stored length, raw length, codec

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packs (no INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    target TEXT,
    blobs BLOB
);
"""


class BlobLocation(NamedTuple):
    """One blob of a file, as the manifest records it."""

    pack_id: str
    digest: bytes
    offset: int
    stored_length: int
    raw_length: int
    codec: int


@dataclass(frozen=True)
class Entry:
    """A path in a version: a directory, a regular file or a symlink."""

    id: int
    path: str
    kind: int
    size: int
    mode: int
    mtime_ns: int
    target: str | None
    blobs: bytes | None

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def path_of(db: sqlite3.Connection, entry_id: int) -> str:
    """The full path of entry ``entry_id`` of the manifest (finished or not) open as ``db``,
    walking up its parents.

    Raises:
        IntegrityError: the parents loop, or a name is not text.
    """
    parts: list[str] = []
    seen = set()
    while entry_id != ROOT_ID:
        row = db.execute("SELECT parent, name FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            break
        if entry_id in seen or not isinstance(row[1], str):
            raise IntegrityError(f"damaged manifest: entry {entry_id} has a bad parent or name")
        seen.add(entry_id)
        entry_id = row[0]
        parts.append(row[1])
    return "/".join(reversed(parts))


def encode_blobs(locations: list[tuple[int, bytes, int, int, int, int]]) -> bytes:
    """Pack (pack number, digest, offset, stored, raw, codec) tuples into the ``blobs`` column."""
    return b"".join(BLOB.pack(*loc) for loc in locations)
