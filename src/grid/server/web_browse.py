"""A version on the web pages: its folders a page at a time, a file's details, preview and
download, and what changed between two versions (``grid datastore ls``, ``cat`` and ``diff``
as pages, read by the same service code)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from grid.records import FileInfo, Principal
from grid.server.access import OwnerView
from grid.server.previews import image_type, preview
from grid.server.reading import reading
from grid.server.state import server_state
from grid.server.web_common import page, signed_in, size, to_sign_in
from grid.service import browse
from grid.service.diff import diff

router = APIRouter(include_in_schema=False)
PAGE = 200  # entries of a folder per page
DIFF_ROWS = 1000  # changes of each kind shown (the counts are always whole)
_TYPES = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}
_SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


def _view(request: Request, who: Principal, owner: str, name: str) -> OwnerView:
    return server_state(request).access.owner(who, owner, name)


def _row(f: FileInfo) -> dict[str, Any]:
    return {
        "path": f.path,
        "name": f.path.rsplit("/", 1)[-1],
        "kind": f.kind,
        "size": "-" if f.kind == "dir" else size(f.size),
        "mode": stat.filemode(_TYPES.get(f.kind, 0) | (f.mode & 0o7777)),
        "modified": datetime.fromtimestamp(f.mtime_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M"),
        "target": f.target or "",
    }


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each folder down to ``path``."""
    parts = [p for p in path.split("/") if p]
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


def _names(who: Principal, owner: str, name: str) -> dict[str, str]:
    """The datastore's pages' address, and its name as the caller reads it."""
    return {
        "base": f"/ui/datastores/{quote(owner, safe='')}/{quote(name, safe='')}",
        "shown": name if owner == who.user else f"{owner}/{name}",
    }


@router.get("/ui/datastores/{owner}/{name}/{number:int}")
def folder_page(
    request: Request, owner: str, name: str, number: int, path: str = "", after: str = ""
) -> Response:
    """One page of a folder of version ``number`` (``after``: the last name shown before)."""
    who = signed_in(request)
    if who is None:
        return to_sign_in()
    view = _view(request, who, owner, name)
    with reading(server_state(request), view) as ctx:
        listing = browse.list_page(ctx, name, number, path.strip("/"), after, PAGE)
        versions = [v.number for v in view.catalog.versions(name) if v.status == "succeeded"]
    return page(
        request,
        who,
        "folder.html",
        **_names(who, owner, name),
        number=number,
        path=listing.path,
        crumbs=_crumbs(listing.path),
        rows=[_row(f) for f in listing.entries],
        total=listing.total,
        first=after == "",
        next_after=listing.next_after,
        others=[n for n in versions if n != number],
    )


@router.get("/ui/datastores/{owner}/{name}/{number:int}/file")
def file_page(request: Request, owner: str, name: str, number: int, path: str) -> Response:
    """A file of version ``number``: its details, a preview of its head, a download link."""
    who = signed_in(request)
    if who is None:
        return to_sign_in()
    view = _view(request, who, owner, name)
    with reading(server_state(request), view) as ctx:
        info = browse.stat_path(ctx, name, number, path, follow=True)
        shown_preview = None
        if info.kind == "file":
            with browse.open_file(ctx, name, number, path) as opened:
                shown_preview = preview(path, info.size, opened)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    return page(
        request,
        who,
        "file.html",
        **_names(who, owner, name),
        number=number,
        path=path,
        parent=parent,
        crumbs=_crumbs(parent),
        file=_row(info) | {"path": path, "bytes": f"{info.size:,}"},
        preview=shown_preview,
    )


@router.get("/ui/datastores/{owner}/{name}/{number:int}/raw")
def raw_file(
    request: Request, owner: str, name: str, number: int, path: str, download: bool = True
) -> Response:
    """A file's verified bytes: a download, or (``download=false``) a raster image to show;
    never anything a browser would run."""
    who = signed_in(request)
    if who is None:
        return to_sign_in()
    view = _view(request, who, owner, name)
    state = server_state(request)
    with reading(state, view) as ctx:
        info = browse.stat_path(ctx, name, number, path, follow=True)
    shown_type = None if download else image_type(path)
    filename = quote(path.rsplit("/", 1)[-1], safe="")
    disposition = "inline" if shown_type else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{filename}",
        "Content-Length": str(info.size),
        **_SAFE_HEADERS,
    }

    def chunks() -> Iterator[bytes]:
        with reading(state, view) as ctx:
            yield from browse.read_file(ctx, name, number, path)

    return StreamingResponse(
        chunks(), media_type=shown_type or "application/octet-stream", headers=headers
    )


@router.get("/ui/datastores/{owner}/{name}/diff")
def diff_page(request: Request, owner: str, name: str, a: int, b: int) -> Response:
    """What changed from version ``a`` to ``b`` (``grid datastore diff`` as a page)."""
    who = signed_in(request)
    if who is None:
        return to_sign_in()
    view = _view(request, who, owner, name)
    with reading(server_state(request), view) as ctx:
        report = diff(ctx, name, a, b)
    sections = []
    for sign, title, changes in (
        ("+", "Added", report.added),
        ("-", "Removed", report.removed),
        ("M", "Modified", report.modified),
    ):
        rows = [
            {
                "sign": sign,
                "path": c.path + ("/" if c.kind == "dir" else ""),
                "old": "-" if c.old_size is None else size(c.old_size),
                "new": "-" if c.new_size is None else size(c.new_size),
            }
            for c in changes[:DIFF_ROWS]
        ]
        sections.append({"title": title, "count": len(changes), "rows": rows})
    return page(
        request,
        who,
        "diff.html",
        **_names(who, owner, name),
        a=report.a,
        b=report.b,
        sections=sections,
        summary=f"{len(report.added):,} added ({size(report.added_bytes)}), "
        f"{len(report.removed):,} removed ({size(report.removed_bytes)}), "
        f"{len(report.modified):,} modified",
        limit=DIFF_ROWS,
    )
