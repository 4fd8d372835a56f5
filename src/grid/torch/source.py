"""One version's files as a loader sees them: listed once where the dataset is made, opened
again in every process that reads (``DataLoader`` workers, forked or spawned).

The process that makes the dataset keeps the version open while the dataset lives, so no
delete or gc takes it from under a training run; a worker opens its own client and snapshot
of the same version number, through the same settings (embedded, or logged in to a server).
Only the spec and the file list are pickled.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable
from typing import Any

from grid.client import connect
from grid.client.interface import DatastoreClient, VersionReader


class VersionFiles:
    """The regular files under ``prefix`` of version ``ref`` (``NAME`` for the latest
    succeeded one, or ``NAME:VERSION``) whose names end with one of ``suffixes`` (all when
    None), in storage order. ``home``, ``cache_size``: as ``grid.connect``."""

    def __init__(
        self,
        ref: str,
        prefix: str = "",
        suffixes: Iterable[str] | None = None,
        *,
        home: str | None = None,
        cache_size: int | None = None,
    ) -> None:
        self.home, self.cache_size = home, cache_size
        client = connect(home, cache_size=cache_size)
        try:
            name, number = client.parse_ref(ref)
            snapshot = client.snapshot(name, number)
        except BaseException:
            client.close()
            raise
        self.name, self.number = name, snapshot.version.number
        ends = tuple(suffixes) if suffixes is not None else None
        self.ids, self.sizes, self.packs = array("q"), array("q"), array("q")
        self.paths: list[str] = []
        for entry_id, path, size, pack in snapshot.files(prefix):
            if ends is None or path.endswith(ends):
                self.ids.append(entry_id)
                self.paths.append(path)
                self.sizes.append(size)
                self.packs.append(pack)
        self._opened: tuple[int, DatastoreClient, VersionReader] | None = (
            os.getpid(),
            client,
            snapshot,
        )

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.number}"

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_opened"] = None  # a process opens its own
        return state

    def snapshot(self) -> VersionReader:
        """This process's snapshot of the version (opened on first use in a new process; one
        inherited through fork is left alone: it belongs to the parent)."""
        opened = self._opened
        if opened is None or opened[0] != os.getpid():
            client = connect(self.home, cache_size=self.cache_size)
            try:
                snapshot = client.snapshot(self.name, self.number)
            except BaseException:
                client.close()
                raise
            opened = self._opened = (os.getpid(), client, snapshot)
        return opened[2]

    def close(self) -> None:
        """Release this process's snapshot and client (the version may then be deleted)."""
        opened, self._opened = self._opened, None
        if opened is not None and opened[0] == os.getpid():
            opened[2].close()
            opened[1].close()
