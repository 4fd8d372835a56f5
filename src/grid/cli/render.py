"""Tables and JSON for people and scripts: stdout is for data."""

from __future__ import annotations

import json
import stat as stat_mod
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from grid.records import FAILED, PROCESSING, SUCCEEDED, DatastoreInfo, FileInfo, VersionInfo

_STATUS_STYLE = {SUCCEEDED: "green", FAILED: "red"}


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def when(t: datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    print(json.dumps(_jsonable(value), indent=2))


def _status(v: VersionInfo) -> str:
    style = _STATUS_STYLE.get(v.status, "yellow")
    text = f"[{style}]{v.status}[/{style}]"
    if v.status == PROCESSING and v.progress_done is not None:
        done = human_bytes(v.progress_done)
        if v.progress_total:
            share = min(100, v.progress_done * 100 // v.progress_total)
            return f"{text} {share}% ({done} of {human_bytes(v.progress_total)})"
        return f"{text} ({done})"
    return text


def _table(*headers: str) -> Table:
    return Table(*headers, box=None, header_style="bold")


def datastores_table(items: list[DatastoreInfo]) -> Table:
    table = _table("name", "latest", "versions", "files", "size", "status", "created")
    for d in items:
        v = d.latest
        table.add_row(
            d.name,
            str(v.number) if v else "-",
            str(d.versions),
            f"{v.files:,}" if v else "-",
            human_bytes(v.size) if v else "-",
            _status(v) if v else "-",
            when(v.created_at if v else d.created_at),
        )
    return table


def versions_table(items: list[VersionInfo]) -> Table:
    table = _table("version", "status", "files", "size", "stored", "created", "finished", "reason")
    for v in items:
        table.add_row(
            str(v.number),
            _status(v),
            f"{v.files:,}",
            human_bytes(v.size),
            human_bytes(v.stored_bytes),
            when(v.created_at),
            when(v.finished_at),
            v.reason or "",
        )
    return table


def files_table(items: list[FileInfo]) -> Table:
    table = _table("mode", "size", "modified", "path")
    for f in items:
        name = f.path + ("/" if f.kind == "dir" else "")
        if f.kind == "symlink":
            name += f" -> {f.target}"
        mtime = datetime.fromtimestamp(f.mtime_ns / 1e9)
        table.add_row(
            stat_mod.filemode(f.mode),
            f"{f.size:,}" if f.kind == "file" else "-",
            mtime.strftime("%Y-%m-%d %H:%M"),
            name,
        )
    return table


def show(table: Table) -> None:
    for column in table.columns:
        column.no_wrap = True
    console = Console()
    if not console.is_terminal:
        console = Console(width=250)
    console.print(table)
