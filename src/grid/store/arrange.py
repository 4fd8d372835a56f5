"""Turn a staged manifest (an archive's entries, in archive order) into a finished manifest in
storage order, settling what needs the whole tree.

In order: the (parent, name) index is built, so a path the archive holds twice is found;
folder metadata from explicit folder entries is applied; hardlinks become files sharing their
target's blobs; every symlink is resolved the way the kernel would (following links inside the
tree) and one that leads above the root is refused; a single top-level folder becomes the root
unless kept (or unless a link would leave it); then entries are copied depth first, names
sorted, computing the counts and the tree digest on the way.
"""

from __future__ import annotations

import os
import sqlite3
from collections import deque
from dataclasses import dataclass

from grid.errors import ArchiveError
from grid.ids import TreeHasher
from grid.store.manifest import BLOB, DIR, FILE, ROOT_ID, SYMLINK, path_of
from grid.store.manifest_writer import ManifestWriter

_MAX_LINK_HOPS = 40
_SHOWN_CHARS = 200  # of a path quoted in a message (as grid.sources.archive_rules.shown)
_PAGE = 1000
_COLUMNS = "id, name, kind, size, mode, mtime_ns, target, blobs"


@dataclass
class Arranged:
    """What the finished manifest holds; ``top`` is the folder made the root, if any."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    tree_digest: str = ""
    top: str | None = None
    root_mtime_ns: int = 0
    kept_for_links: bool = False  # a single top folder was kept because links leave it


def arrange(
    staged_path: str,
    out: ManifestWriter,
    *,
    hardlinks: list[tuple[str, str, int, int, str]],
    dir_meta: dict[str, tuple[int, int]],
    keep_root: bool = False,
) -> Arranged:
    """Write the staged manifest at ``staged_path`` into ``out`` (not finished) in storage order.

    ``hardlinks`` are (path, target, mode, mtime_ns, before) in archive order, ``before``
    being the path of the entry staged last before the link: its target must be a file or a
    hardlink that came earlier (as tar extracts them, a link to a later entry fails);
    ``dir_meta`` maps a folder's path to the (mode, mtime_ns) its own entry gave.

    Raises:
        ArchiveError: a duplicate path, a hardlink to no earlier file, a symlink leading
            outside, or nothing at all.
    """
    db = sqlite3.connect(staged_path)
    try:
        staged = _Staged(db)
        staged.index()
        staged.apply_dir_meta(dir_meta)
        staged.add_hardlinks(hardlinks)
        links = staged.symlinks()
        for path in links:
            if _leaves(links, path, 0):
                raise ArchiveError(
                    f"archive entry {_shown(path)} is a symlink to {_shown(links[path])}, which "
                    "leads outside the archive",
                    path=path,
                )
        result = Arranged(root_mtime_ns=dir_meta.get("", (0, 0))[1])
        start = ROOT_ID
        top = staged.single_top()
        if top is not None and not keep_root:
            if any(_leaves(links, path, 1) for path in links):
                result.kept_for_links = True
            else:
                start, result.top = top
                result.root_mtime_ns = staged.mtime(start)
        for no, name in db.execute("SELECT no, name FROM packs ORDER BY no"):
            if out.pack_number(name) != no:
                raise AssertionError("pack numbering must carry over")
        _copy(db, start, out, result)
        if not result.files + result.dirs + result.symlinks:
            raise ArchiveError("the archive holds no files")
        return result
    except sqlite3.Error as exc:
        raise ArchiveError(f"cannot arrange the archive's entries: {exc}") from exc
    finally:
        db.close()


class _Staged:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def index(self) -> None:
        try:
            self.db.execute("CREATE UNIQUE INDEX staged_by_parent ON entries (parent, name)")
        except sqlite3.IntegrityError:
            row = self.db.execute(
                "SELECT min(id) FROM entries GROUP BY parent, name HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
            path = path_of(self.db, row[0])
            raise ArchiveError(f"the archive holds {_shown(path)} twice", path=path) from None

    def lookup(self, path: str) -> tuple[int, int] | None:
        """(id, kind) of ``path``, or None."""
        node, kind = ROOT_ID, DIR
        for part in path.split("/") if path else []:
            row = self.db.execute(
                "SELECT id, kind FROM entries WHERE parent = ? AND name = ?", (node, part)
            ).fetchone()
            if row is None:
                return None
            node, kind = row
        return node, kind

    def mtime(self, entry_id: int) -> int:
        row = self.db.execute("SELECT mtime_ns FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return int(row[0])

    def apply_dir_meta(self, dir_meta: dict[str, tuple[int, int]]) -> None:
        for path, (mode, mtime_ns) in dir_meta.items():
            found = self.lookup(path) if path else None
            if found is not None and found[1] == DIR:
                self.db.execute(
                    "UPDATE entries SET mode = ?, mtime_ns = ? WHERE id = ?",
                    (mode, mtime_ns, found[0]),
                )

    def add_hardlinks(self, hardlinks: list[tuple[str, str, int, int, str]]) -> None:
        first_link = (self.db.execute("SELECT max(id) FROM entries").fetchone()[0] or 0) + 1
        next_id = first_link
        for path, target, mode, mtime_ns, before in hardlinks:
            found = self.lookup(target)
            row = None
            if found is not None and found[1] == FILE:
                # staged ids follow archive order; links are added in archive order after them
                last = self.lookup(before)
                if found[0] >= first_link or (last is not None and found[0] <= last[0]):
                    row = self.db.execute(
                        "SELECT size, blobs FROM entries WHERE id = ?", (found[0],)
                    ).fetchone()
            if row is None:
                raise ArchiveError(
                    f"archive entry {_shown(path)} is a hardlink to {_shown(target)}, which is "
                    "not a file earlier in the archive",
                    path=path,
                )
            parent = self.lookup(os.path.dirname(path))
            if parent is None or parent[1] != DIR:
                raise ArchiveError(
                    f"archive entry {_shown(path)} lies under a non-folder", path=path
                )
            try:
                self.db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                    (
                        next_id,
                        parent[0],
                        os.path.basename(path),
                        FILE,
                        row[0],
                        mode,
                        mtime_ns,
                        row[1],
                    ),
                )
            except sqlite3.IntegrityError:
                raise ArchiveError(f"the archive holds {_shown(path)} twice", path=path) from None
            next_id += 1

    def symlinks(self) -> dict[str, str]:
        rows = self.db.execute("SELECT id, target FROM entries WHERE kind = ?", (SYMLINK,))
        return {path_of(self.db, i): str(t) for i, t in rows.fetchall()}

    def single_top(self) -> tuple[int, str] | None:
        """(id, name) of the only entry at the root if it is a folder."""
        rows = self.db.execute(
            "SELECT id, name, kind FROM entries WHERE parent = ? LIMIT 2", (ROOT_ID,)
        ).fetchall()
        if len(rows) == 1 and rows[0][2] == DIR:
            return int(rows[0][0]), str(rows[0][1])
        return None


def _shown(path: str) -> str:
    """``path`` quoted for a message, cut to its first 200 characters."""
    return repr(path if len(path) <= _SHOWN_CHARS else path[:_SHOWN_CHARS] + "…")


def _leaves(links: dict[str, str], path: str, floor: int) -> bool:
    """Whether resolving the symlink at ``path`` climbs above depth ``floor`` (0: the root),
    following the tree's other links as the kernel would."""
    parts = path.split("/")[:-1]
    todo = deque(links[path].split("/"))
    if links[path].startswith("/"):
        return True
    hops = 0
    while todo:
        part = todo.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if len(parts) <= floor:
                return True
            parts.pop()
            continue
        parts.append(part)
        target = links.get("/".join(parts))
        if target is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS:
                return False  # a loop: the kernel stops it (ELOOP) before it leads anywhere
            if target.startswith("/"):
                return True
            parts.pop()
            todo.extendleft(reversed(target.split("/")))
    return False


def _digests(blobs: bytes | None) -> list[bytes]:
    return [b[1] for b in BLOB.iter_unpack(blobs or b"")]


def _copy(db: sqlite3.Connection, start: int, out: ManifestWriter, result: Arranged) -> None:
    """Copy the tree under ``start`` depth first, names sorted, a folder before its contents."""
    tree = TreeHasher()
    # stack of (staged folder id, new folder id, path prefix, last name copied)
    stack: list[tuple[int, int, str, str]] = [(start, ROOT_ID, "", "")]
    while stack:
        src, dst, prefix, after = stack.pop()
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE parent = ? AND name > ? ORDER BY name LIMIT ?",
            (src, after, _PAGE),
        ).fetchall()
        for entry_id, name, kind, size, mode, mtime_ns, target, blobs in rows:
            path = f"{prefix}{name}"
            new_id = out.add(dst, name, kind, size, mode, mtime_ns, target, blobs)
            tree.add(path, kind, mode, mtime_ns, size, target, _digests(blobs))
            if kind == DIR:
                result.dirs += 1
                stack.append((src, dst, prefix, name))  # come back for the rest
                stack.append((entry_id, new_id, f"{path}/", ""))
                break
            if kind == SYMLINK:
                result.symlinks += 1
            else:
                result.files += 1
                result.bytes += size
        else:
            if len(rows) == _PAGE:
                stack.append((src, dst, prefix, rows[-1][1]))
    result.tree_digest = tree.hexdigest()
