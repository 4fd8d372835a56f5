r"""Tables and JSON for people and scripts: stdout is for data.

Names and messages that come from stored data (file names, symlink targets, failure reasons)
are never read as Rich markup, and control characters in them never reach the terminal raw:
a name holding one is shown as ``$'...'`` with C escapes (``\e``, ``\n``, ``\t``, ``\xNN``,
``\uNNNN``), the way GNU ls quotes such names; bash reads it back as the exact name. JSON
keeps the exact names.
"""

from __future__ import annotations

import json
import re
import stat as stat_mod
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich and the records are imported by what prints a table, not before
    from rich.table import Table

    from grid.records import FileInfo, VersionInfo

# What must not reach a terminal raw: C0 controls, DEL and C1 controls (ESC and CSI start
# sequences that retitle, recolour or rewrite the screen; CR and LF move the cursor), the
# Unicode line and paragraph separators, the bidirectional overrides and isolates (they reorder
# what is shown), and lone surrogates (bytes that were not UTF-8, which cannot be printed).
_PRINTABLE = re.compile("[ -~]*")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_C_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\x1b": "\\e",
}


def _escape_char(ch: str) -> str:
    if ch in _C_ESCAPES:
        return _C_ESCAPES[ch]
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def safe_name(text: str) -> str:
    """``text`` (a file, symlink target or datastore name) safe to print on a terminal.

    Unchanged unless it holds a control character (or starts with ``$'``, so that no plain name
    can pass for a quoted one); then ``$'...'`` with C escapes, as GNU ls shows it.
    """
    if not _UNSAFE.search(text) and not text.startswith("$'"):
        return text
    body = text.replace("\\", "\\\\").replace("'", "\\'")
    return "$'" + _UNSAFE.sub(lambda m: _escape_char(m.group()), body) + "'"


def safe_text(text: str) -> str:
    r"""Prose that may quote stored names (a warning, a failure reason), made one line with
    its control characters escaped (``\n``, ``\e``, ...) and no quoting added."""
    return _UNSAFE.sub(lambda m: _escape_char(m.group()), text)


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def when(t: datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    print(json.dumps(jsonable(value), indent=2))


def status(v: VersionInfo) -> str:
    """A version's status, coloured, with its progress while it is being made."""
    from grid.records import FAILED, PROCESSING, SUCCEEDED, UPLOADING

    style = {SUCCEEDED: "green", FAILED: "red"}.get(v.status, "yellow")
    text = f"[{style}]{v.status}[/{style}]"
    if v.status in (UPLOADING, PROCESSING) and v.progress_done is not None:
        done = human_bytes(v.progress_done)
        if v.progress_total:
            share = min(100, v.progress_done * 100 // v.progress_total)
            return f"{text} {share}% ({done} of {human_bytes(v.progress_total)})"
        return f"{text} ({done})"
    return text


def columns_table(*headers: str, fold: str) -> Table:
    """A table whose columns never wrap or shrink, except ``fold``: on a narrow terminal that
    one (the free-text column: a path, a reason) folds onto more lines, so that one long name
    cannot squash every other column to "…"."""
    from rich.table import Column, Table

    columns = [
        Column(h, overflow="fold") if h == fold else Column(h, no_wrap=True) for h in headers
    ]
    return Table(*columns, box=None, header_style="bold")


def files_table(items: list[FileInfo]) -> Table:
    from rich.text import Text

    table = columns_table("mode", "size", "modified", "path", fold="path")
    for f in items:
        shown = safe_name(f.path) + ("/" if f.kind == "dir" else "")
        if f.kind == "symlink":
            shown += f" -> {safe_name(f.target or '')}"
        mtime = datetime.fromtimestamp(f.mtime_ns / 1e9)
        table.add_row(
            stat_mod.filemode(f.mode),
            f"{f.size:,}" if f.kind == "file" else "-",
            mtime.strftime("%Y-%m-%d %H:%M"),
            Text(shown),
        )
    return table


def fits(table: Table) -> bool:
    """Whether ``table`` prints at its natural width here (always, when piped)."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        return True
    unbounded = console.options.update_width(1_000_000)  # else measuring stops at the width
    return console.measure(table, options=unbounded).maximum <= console.width


def show(table: Table) -> None:
    """Print ``table``: fitted to a terminal's width, never cut when piped (one line a row)."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        lines = _plain_lines(console, table)
        if lines is not None:  # what rich prints, without its layout engine's cost
            sys.stdout.write("".join(line + "\n" for line in lines))
            return
        console = Console(width=1_000_000)  # no column of a pipe or file is ever cut short
    console.print(table)


def _plain_lines(console: Any, table: Table) -> list[str] | None:
    """``table`` as rich prints it to a pipe (no colour, unlimited width), when every cell is
    plain printable ASCII (one character, one column); else None."""
    from rich.text import Text

    columns = []
    for column in table.columns:
        cells = []
        for cell in [column.header, *column.cells]:
            if isinstance(cell, str) and ("[" in cell or ":" in cell):
                cell = console.render_str(cell, highlight=False)  # markup, emoji: as rich reads
            text = cell if isinstance(cell, str) else cell.plain if isinstance(cell, Text) else None
            if text is None or not _PRINTABLE.fullmatch(text):
                return None
            cells.append(text)
        columns.append(cells)
    if (
        not columns
        or table.box is not None
        or not table.show_header
        or table.padding != (0, 1, 0, 1)
    ):
        return None
    widths = [max(map(len, cells)) for cells in columns]
    if sum(widths) + 2 * len(widths) > 900_000:
        return None
    return [
        "".join(f" {cells[i].ljust(w)} " for cells, w in zip(columns, widths, strict=True))
        for i in range(len(columns[0]))
    ]
