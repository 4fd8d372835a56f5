"""fsspec filesystem for ``grid://NAME/VERSION/PATH``: pandas, pyarrow and friends read straight
from a datastore, no mount needed (a front-end over ``grid.Client``).

    >>> import pandas as pd
    >>> pd.read_csv("grid://cats/1/val/labels.csv")
    >>> pd.read_parquet("grid://sales/3/2024.parquet", storage_options={"home": "/data/grid"})

Levels: ``grid://`` lists datastores, ``grid://NAME`` its succeeded versions, and
``grid://NAME/VERSION/...`` the version's tree. Read-only: every write (open for writing,
mkdir, rm, mv, copy, pipe, touch, put) raises ``PermissionError`` with errno ``EROFS``. Byte
ranges follow Python slices, as fsspec's MemoryFileSystem does (``cat_file(p, -10)``: the last
10 bytes; an end before the start: ``b""``); open files know their ``size``.
"""

from __future__ import annotations

import builtins
import errno
import io
from typing import Any, NoReturn

from fsspec.spec import AbstractFileSystem

from grid.client import connect
from grid.errors import NotFoundError
from grid.records import SUCCEEDED, FileInfo


class GridFile(io.BufferedReader):
    """An open file of a version: a buffered reader that knows its ``size`` (fsspec's
    ``read_block``, ``tail`` and ranges from the end ask the file for it)."""

    @property
    def size(self) -> int:
        raw: Any = self.raw  # a grid.store.reader.BlobFile
        return int(raw.size)


def read_only(what: str, path: Any) -> PermissionError:
    """The error for a write to ``grid://``: EROFS, as a read-only mount answers."""
    return PermissionError(errno.EROFS, f"grid:// is read-only: cannot {what} {path}")


class GridFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Read-only fsspec view of the datastores of one installation.

    Args:
        home: GRID_HOME of the installation (default: ``$GRID_HOME`` or ``~/.grid``).
    """

    protocol = "grid"
    root_marker = ""

    def __init__(self, home: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = connect(home)

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if path.startswith("grid://"):
            path = path[len("grid://") :]
        return path.strip("/")

    def _split(self, path: str) -> tuple[str | None, int | None, str]:
        parts = self._strip_protocol(path).split("/", 2)
        name = parts[0] or None
        if len(parts) < 2:
            return name, None, ""
        if not parts[1].isdigit():
            raise FileNotFoundError(f"{path}: a version is an integer (grid://NAME/VERSION/...)")
        return name, int(parts[1]), parts[2] if len(parts) > 2 else ""

    def _entry(self, name: str, version: int, f: FileInfo) -> dict[str, Any]:
        kind = {"dir": "directory", "file": "file"}.get(f.kind, "other")
        out = {
            "name": f"{name}/{version}/{f.path}",
            "size": f.size,
            "type": kind,
            "mode": f.mode,
            "mtime": f.mtime_ns / 1e9,
        }
        if f.kind == "symlink":
            out["destination"] = f.target
            try:  # like os.stat: describe what the link points to, if it is inside the version
                target = self.client.stat(name, version, f.path, follow=True)
                out.update(type={"dir": "directory"}.get(target.kind, "file"), size=target.size)
            except NotFoundError:
                pass
        return out

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> builtins.list[Any]:
        name, version, inner = self._split(path)
        try:
            if name is None:
                out = [{"name": d.name, "size": 0, "type": "directory"} for d in self.client.list()]
            elif version is None:
                out = [
                    {"name": f"{name}/{v.number}", "size": v.size, "type": "directory"}
                    for v in self.client.versions(name)
                    if v.status == SUCCEEDED
                ]
            else:
                out = [self._entry(name, version, f) for f in self.client.ls(name, version, inner)]
        except NotFoundError as exc:
            raise FileNotFoundError(path) from exc
        return out if detail else [o["name"] for o in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        name, version, inner = self._split(path)
        if name is None or version is None or not inner:
            try:
                if name is not None and version is not None:
                    v = self.client.version(name, version)
                    if v.status != SUCCEEDED:
                        raise FileNotFoundError(path)
                elif name is not None:
                    self.client.versions(name)
            except NotFoundError as exc:
                raise FileNotFoundError(path) from exc
            return {"name": self._strip_protocol(path), "size": 0, "type": "directory"}
        try:
            return self._entry(name, version, self.client.stat(name, version, inner))
        except NotFoundError as exc:
            raise FileNotFoundError(path) from exc

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise read_only(f"open with mode {mode!r}", path)
        name, version, inner = self._split(path)
        if name is None or version is None or not inner:
            raise IsADirectoryError(path)
        try:
            opened = self.client.open(name, version, inner)
        except NotFoundError as exc:
            raise FileNotFoundError(path) from exc
        return GridFile(opened.detach(), buffer_size=1 << 20)

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The bytes ``[start:end]`` of a file, with Python's slice rules (negative: from the
        end; an end before the start: ``b""``)."""
        with self.open(path, "rb") as f:
            first, stop, _ = slice(start, end).indices(f.size)
            if stop <= first:
                return b""
            f.seek(first)
            return bytes(f.read(stop - first))

    # -- writes: all refused -----------------------------------------------------------------
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> NoReturn:
        raise read_only("make a directory", path)

    def makedirs(self, path: str, exist_ok: bool = False) -> NoReturn:
        raise read_only("make a directory", path)

    def rmdir(self, path: str) -> NoReturn:
        raise read_only("remove", path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> NoReturn:
        raise read_only("remove", path)

    def rm_file(self, path: str) -> NoReturn:
        raise read_only("remove", path)

    def _rm(self, path: str) -> NoReturn:
        raise read_only("remove", path)

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise read_only(f"move {path1} to", path2)

    def copy(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise read_only(f"copy {path1} to", path2)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> NoReturn:
        raise read_only(f"copy {path1} to", path2)

    def pipe_file(self, path: str, value: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise read_only("write", path)

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> NoReturn:
        raise read_only("touch", path)

    def put_file(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise read_only(f"put {lpath} at", rpath)
