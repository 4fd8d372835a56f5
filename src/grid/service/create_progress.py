"""A create's progress: what the front-end is told and the catalog records, and when.

``reporter`` turns ingest's figures into ``CreateProgress`` for the caller and records an
archive's download progress in the catalog once a second; ``Ticker`` calls it every second
even while one archive member trickles in; ``Totals`` counts a folder in the background, for
an ETA.
"""

from __future__ import annotations

import contextlib
import stat
import threading
import time
from collections.abc import Callable

from grid.errors import GridError
from grid.records import VersionInfo
from grid.reports import CreateProgress, Progress
from grid.service.context import Context
from grid.store import IngestStats
from grid.tree import Source, StreamedSource

PROGRESS_EVERY = 1.0  # seconds between progress records in the catalog


def reporter(
    ctx: Context,
    version: VersionInfo,
    progress: Progress | None,
    totals: Totals | None,
    archive: StreamedSource | None,
) -> Callable[[IngestStats], None]:
    last = [0.0]

    def report(stats: IngestStats) -> None:
        downloaded = archive.downloaded if archive is not None else None
        if archive is not None and time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            ctx.catalog.set_progress(
                version.datastore, version.number, archive.downloaded, archive.total
            )
        if progress is not None:
            progress(
                CreateProgress(
                    stats.files,
                    stats.bytes,
                    totals.files if totals and totals.done else None,
                    totals.bytes if totals and totals.done else None,
                    "processing" if archive is not None else "uploading",
                    downloaded,
                    archive.total if archive is not None else None,
                )
            )

    return report


class Ticker:
    """Reports an archive's progress at least once a second, also while its bytes trickle in
    inside one member (ingest reports only as members are stored)."""

    def __init__(self, reporter: Callable[[IngestStats], None]) -> None:
        self.stop = threading.Event()
        self._reporter, self._stats = reporter, IngestStats()
        self._lock = threading.Lock()
        threading.Thread(target=self._tick, name="grid-progress", daemon=True).start()

    def report(self, stats: IngestStats) -> None:
        with self._lock:  # one report at a time: the front-end's display is not thread-safe
            self._stats = stats
            self._reporter(stats)

    def _tick(self) -> None:
        while not self.stop.wait(PROGRESS_EVERY):
            with contextlib.suppress(GridError), self._lock:
                self._reporter(self._stats)


class Totals:
    """Counts a source's files and bytes in the background, for an ETA (``Source.recount``)."""

    def __init__(self, source: Source) -> None:
        self.files = self.bytes = 0
        self.done = False
        self.stop = threading.Event()
        self._source = source
        threading.Thread(target=self._count, name="grid-count", daemon=True).start()

    def _count(self) -> None:
        try:
            for entry in self._source.entries():
                if self.stop.is_set():
                    return
                if stat.S_ISREG(entry.mode):
                    self.files += 1
                    self.bytes += entry.size
        except GridError:
            return
        self.done = True
