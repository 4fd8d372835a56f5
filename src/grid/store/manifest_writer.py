"""Building a manifest file (``grid.store.manifest``'s format): rows in walk (= storage)
order without indexes; ``finish`` builds the (parent, name) index, so a lookup or a directory
listing reads a few pages, never the whole manifest."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Mapping

from grid.errors import SourceError, StorageError, sqlite_error
from grid.objects.pinned import is_pin
from grid.store.manifest import FORMAT_VERSION, PINNED_FORMAT_VERSION, ROOT_ID, SCHEMA


class ManifestWriter:
    """Builds a manifest file; not thread-safe (one writer, the ingest consumer)."""

    _FLUSH_ROWS = 2000

    def __init__(self, path: str, base_packs: Mapping[int, str] | None = None) -> None:
        """``base_packs``: the ``packs`` table of the manifest this one will be stored as a
        delta against; its packs keep their numbers here, so the blob lists of unchanged files
        are the same bytes (only the packs used are listed, as they are first used)."""
        self.path = path
        try:
            if os.path.exists(path):
                os.unlink(path)
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot create the manifest {path}: {exc}", key=path) from exc
        self._rows: list[tuple[object, ...]] = []
        self._next_id = ROOT_ID + 1
        base = base_packs or {}
        self._pack_numbers: dict[str, int] = {name: no for no, name in base.items()}
        self._pack_names: dict[int, str] = dict(base)
        self._listed: set[int] = set()
        self._next_pack = max(base, default=-1) + 1
        self._copied = False
        self._pinned = False  # it references an object where it is: format 3.0

    @classmethod
    def copy_of(cls, source: str, path: str) -> ManifestWriter:
        """A writer at ``path`` holding a copy of the finished manifest ``source``: entries,
        packs and lookup index as they are (an unchanged tree); ``finish`` replaces only its
        metadata. Nothing may be added to it."""
        try:
            shutil.copyfile(source, path)
        except OSError as exc:
            raise StorageError(f"cannot create the manifest {path}: {exc}", key=path) from exc
        writer = cls.__new__(cls)
        writer.path = path
        writer._rows, writer._copied = [], True
        try:
            writer._db = sqlite3.connect(path, check_same_thread=False)
            writer._db.execute("PRAGMA journal_mode=OFF")
            writer._db.execute("PRAGMA synchronous=OFF")
            packs = writer._db.execute("SELECT no, name FROM packs ORDER BY no").fetchall()
            last = writer._db.execute("SELECT MAX(id) FROM entries").fetchone()[0]
        except sqlite3.Error as exc:
            writer.abort()
            raise StorageError(f"cannot copy the manifest {source}: {exc}", key=path) from exc
        writer._next_id = (last or ROOT_ID) + 1
        writer._pack_numbers = {name: no for no, name in packs}
        writer._pack_names = dict(packs)
        writer._listed = set(writer._pack_names)
        writer._next_pack = max(writer._pack_names, default=-1) + 1
        writer._pinned = any(is_pin(name) for name in writer._pack_names.values())
        return writer

    def pack_number(self, pack_id: str) -> int:
        """Return the manifest-local number of a pack, registering it on first use."""
        no = self._pack_numbers.get(pack_id)
        if no is None:
            self._refuse_copied()
            no = self._pack_numbers[pack_id] = self._next_pack
            self._next_pack += 1
            self._pack_names[no] = pack_id
        if no not in self._listed:
            self._listed.add(no)
            self._pinned = self._pinned or is_pin(pack_id)  # a base's pin counts once used
            self._db.execute("INSERT INTO packs VALUES (?, ?)", (no, pack_id))
        return no

    def pack_id(self, number: int) -> str:
        """The pack registered under ``number``."""
        return self._pack_names[number]

    def add(
        self,
        parent: int,
        name: str,
        kind: int,
        size: int,
        mode: int,
        mtime_ns: int,
        target: str | None = None,
        blobs: bytes | None = None,
    ) -> int:
        """Append an entry under directory id ``parent`` and return its id."""
        self._refuse_copied()
        entry_id = self._next_id
        self._next_id += 1
        self._rows.append((entry_id, parent, name, kind, size, mode, mtime_ns, target, blobs))
        if len(self._rows) >= self._FLUSH_ROWS:
            self._flush()
        return entry_id

    def _refuse_copied(self) -> None:
        if self._copied:
            raise RuntimeError("a copied manifest (ManifestWriter.copy_of) takes no new entries")

    @property
    def pack_ids(self) -> list[str]:
        """Every pack the manifest references so far."""
        return [self._pack_names[no] for no in sorted(self._listed)]

    def _flush(self) -> None:
        try:
            self._db.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._rows
            )
        except UnicodeEncodeError as exc:
            raise SourceError(
                f"a file name is not valid UTF-8 ({exc.object!r}); rename it and retry"
            ) from exc
        except sqlite3.Error as exc:
            raise _write_error(exc, self.path) from exc
        self._rows.clear()

    def finish(self, meta: dict[str, str]) -> None:
        """Write metadata, build the lookup index and close the file."""
        self._flush()
        try:
            if self._copied:
                self._db.execute("DELETE FROM meta")
            self._db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format_version", PINNED_FORMAT_VERSION if self._pinned else FORMAT_VERSION),
                    *sorted(meta.items()),
                ],
            )
            if not self._copied:
                self._db.execute("CREATE UNIQUE INDEX entries_by_parent ON entries (parent, name)")
            self._db.commit()
        except sqlite3.Error as exc:
            raise _write_error(exc, self.path) from exc
        self._db.close()

    def stage(self) -> None:
        """Write pending rows and close, with no metadata and no index: a staged manifest,
        which ``grid.store.arrange`` turns into a finished one."""
        self._flush()
        try:
            self._db.commit()
        except sqlite3.Error as exc:
            raise _write_error(exc, self.path) from exc
        self._db.close()

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._db.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def _write_error(exc: sqlite3.Error, path: str) -> StorageError:
    return sqlite_error(exc, f"write the manifest {path}", key=path)
