"""Progress of a create: a rich bar on a terminal, a plain line every few seconds otherwise
(rich is imported only for the bar: ~30 ms of a re-run that takes a few tenths of a second)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

from grid.cli.render import human_bytes, safe_text
from grid.client import CreateProgress

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_PLAIN_EVERY = 5.0
_TTY_EVERY = 0.25


class CreateDisplay:
    """Context manager whose ``update`` is the create's progress callback."""

    def __init__(self, name: str, tty: bool | None = None) -> None:
        self.name = safe_text(name)  # shown, not parsed: no control characters, no markup
        self._markup_name = self.name
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.start = time.monotonic()
        self.last = 0.0 if self.tty else self.start
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> CreateDisplay:
        if self.tty:
            from rich.console import Console
            from rich.markup import escape
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._markup_name = escape(self.name)
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[files]} files"),
                TextColumn("{task.fields[size]}"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
                refresh_per_second=4,  # redraws take the GIL from the upload
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                f"uploading {self._markup_name}", total=None, files="0", size="0 B", rate=""
            )
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(t, e, tb)

    def _rates(self, p: CreateProgress) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        return f"{p.files / elapsed:,.0f} files/s {human_bytes(p.bytes / elapsed)}/s"

    def update(self, p: CreateProgress) -> None:
        now = time.monotonic()
        if now - self.last < (_TTY_EVERY if self.tty else _PLAIN_EVERY):
            return
        self.last = now
        if self._bar is not None and self._task is not None:
            files = f"{p.files:,}" + (f"/{p.total_files:,}" if p.total_files else "")
            downloading = p.downloaded is not None
            self._bar.update(
                self._task,
                description=f"{p.phase} {self._markup_name}",
                completed=p.downloaded if downloading else p.bytes,
                total=p.download_total if downloading else p.total_bytes,
                files=files,
                size=human_bytes(p.bytes),
                rate=self._rates(p),
            )
        else:
            total = f" of {p.total_files:,}" if p.total_files else ""
            fetched = ""
            if p.downloaded is not None:
                of = f" of {human_bytes(p.download_total)}" if p.download_total else ""
                fetched = f"downloaded {human_bytes(p.downloaded)}{of}, "
            print(
                f"{p.phase} {self.name}: {fetched}{p.files:,}{total} files, "
                f"{human_bytes(p.bytes)}, {self._rates(p)}",
                file=sys.stderr,
                flush=True,
            )
