"""What a version's file looks like on a page: the head of a text, CSV or Parquet file, or
an image the browser shows itself; never the whole file, and never user bytes run as a page.

The bytes come through ``grid.service.browse.open_file`` (verified, reading only the blobs a
head needs). Parquet heads need pyarrow (the ``web`` extra); without it the page says so.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import BinaryIO

TEXT_HEAD = 64 * 1024
TABLE_ROWS = 50
IMAGE_MAX = 20 * 1000 * 1000
IMAGES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
}
_TABLES = {"csv": ",", "tsv": "\t"}


@dataclass
class Preview:
    """One of: ``image`` (the page shows the file itself), ``text``, ``table`` (``columns``
    and ``rows``), or ``none`` with ``note`` saying why."""

    kind: str
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""


def suffix(path: str) -> str:
    """The lower-case suffix of ``path`` (``""`` when there is none)."""
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def image_type(path: str) -> str | None:
    """The media type a browser may show ``path`` as (raster images only: an SVG can run
    script)."""
    return IMAGES.get(suffix(path))


def preview(path: str, size: int, opened: BinaryIO) -> Preview:
    """The preview of file ``path`` of ``size`` bytes, read from ``opened``."""
    kind = suffix(path)
    if kind in IMAGES:
        if size > IMAGE_MAX:
            return Preview("none", note="too big to show here: download it")
        return Preview("image")
    if kind == "parquet":
        return _parquet(opened)
    head = opened.read(TEXT_HEAD)
    if b"\0" in head:
        return Preview("none", note="a binary file: download it to look inside")
    text = head.decode("utf-8", errors="replace")
    cut = size > len(head)
    if kind in _TABLES:
        return _table(text, _TABLES[kind], cut)
    if cut:
        return Preview("text", text=text, note=f"the first {TEXT_HEAD // 1024} KiB")
    return Preview("text", text=text)


def _table(text: str, delimiter: str, cut: bool) -> Preview:
    if cut and "\n" in text:
        text = text[: text.rindex("\n")]  # not half a row
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))[: TABLE_ROWS + 1]
    if not rows:
        return Preview("text", text="")
    return Preview("table", columns=rows[0], rows=rows[1:], note=f"the first {len(rows) - 1} rows")


def _parquet(opened: BinaryIO) -> Preview:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return Preview(
            "none",
            note="Parquet previews need pyarrow on the server (pip install 'grid-datastores[web]')",
        )
    try:
        parquet = pq.ParquetFile(opened)
        batch = next(parquet.iter_batches(batch_size=TABLE_ROWS), None)
    except Exception as exc:  # pyarrow's errors have no common base: any is "not readable"
        return Preview("none", note=f"not a readable Parquet file ({type(exc).__name__})")
    columns = parquet.schema_arrow.names
    rows = [] if batch is None else [[str(v) for v in row.values()] for row in batch.to_pylist()]
    total = parquet.metadata.num_rows
    return Preview("table", columns=columns, rows=rows, note=f"{len(rows)} of {total:,} rows")
