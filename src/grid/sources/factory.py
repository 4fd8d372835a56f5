"""Which source reads a create's SOURCE: one table of kinds, each saying what it accepts,
the datastore name it suggests and how it opens. A new kind of source is a row here; the
create itself never names a concrete source class.

The concrete sources are imported when a row opens one, so naming a datastore (``--help``,
``default_name``) never loads an HTTP or S3 client.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from grid.errors import UsageError
from grid.sources.archive_rules import ArchiveLimits
from grid.tree import Source, Warn


@dataclass(frozen=True)
class StagedArchive:
    """An archive already sent to the storage (a browser's upload, in parts): ``open``
    gives its bytes from the start, ``size`` of them."""

    open: Callable[[], BinaryIO]
    size: int


@dataclass(frozen=True)
class SourceOptions:
    """How to read a remote source.

    ``endpoint_url``, ``profile``, ``region``: for ``s3://`` (default: the standard AWS
    chain). ``limits``: an archive's decompression-bomb bounds; ``keep_root``: keep an
    archive's single top-level folder instead of making its contents the root.
    ``staged``: the source is this archive (the source path only names it). ``pinned``:
    ``--no-copy``: an ``s3://`` prefix listed with each object pinned, to be referenced.
    """

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    keep_root: bool = False
    staged: StagedArchive | None = None
    pinned: bool = False


@dataclass(frozen=True)
class Place:
    """Where a source's private files go and what it may reach: ``scratch_dir`` for spooled
    downloads, ``exclude`` folders never entered (grid's own home), ``allow_private`` URLs
    that resolve to private addresses (a server refuses them by default)."""

    scratch_dir: str
    exclude: tuple[str, ...] = ()
    allow_private: bool = True


Opener = Callable[[str, Warn | None, SourceOptions, Place], tuple[Source, str]]


@dataclass(frozen=True)
class Kind:
    """One kind of source: ``accepts(path, options)``, ``name(path)`` (the datastore name it
    suggests) and ``open`` (the source and its identity, the origin recorded on versions)."""

    accepts: Callable[[str, SourceOptions], bool]
    name: Callable[[str], str]
    open: Opener


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _s3_name(path: str) -> str:
    return path[5:].rstrip("/").rsplit("/", 1)[-1]


def _archive_name(path: str) -> str:
    from grid.sources.archive import archive_name

    return archive_name(path)


def _local_name(path: str) -> str:
    return os.path.basename(os.path.normpath(os.path.abspath(path)))


def _open_s3(
    path: str, warn: Warn | None, options: SourceOptions, place: Place
) -> tuple[Source, str]:
    from grid.sources.s3 import S3Source

    source = S3Source(
        path,
        warn,
        endpoint_url=options.endpoint_url,
        profile=options.profile,
        region=options.region,
        pinned=options.pinned,
    )
    return source, path.rstrip("/")


def _open_archive(
    path: str, warn: Warn | None, options: SourceOptions, place: Place
) -> tuple[Source, str]:
    """An archive at an http(s) URL, or the staged one ``options`` carries (``path`` names it)."""
    from grid.sources.archive import ArchiveSource

    staged = options.staged
    source = ArchiveSource(
        path,
        warn,
        limits=options.limits,
        allow_private=place.allow_private,
        spool_dir=place.scratch_dir,
        body=staged.open() if staged is not None else None,
        size=staged.size if staged is not None else None,
    )
    return source, path


def _open_local(
    path: str, warn: Warn | None, options: SourceOptions, place: Place
) -> tuple[Source, str]:
    from grid.sources.local import LocalSource

    scheme = path.split("://", 1)[0] if "://" in path else ""
    if scheme.isalnum() and not os.path.exists(path):
        raise UsageError(
            f"{path}: {scheme}:// is not supported; SOURCE is a folder, a file, an http(s) URL "
            "of an archive or s3://bucket/prefix",
            rule="SOURCE is a path, an http(s) archive URL or an s3:// URL",
        )
    return LocalSource(path, warn, exclude=place.exclude), os.path.abspath(path)


KINDS: list[Kind] = [
    Kind(lambda _p, o: o.staged is not None, _archive_name, _open_archive),
    Kind(lambda p, _o: p.startswith("s3://"), _s3_name, _open_s3),
    Kind(lambda p, _o: _is_url(p), _archive_name, _open_archive),
    Kind(lambda _p, _o: True, _local_name, _open_local),  # last: anything else is a path
]


def _kind(path: str, options: SourceOptions) -> Kind:
    return next(kind for kind in KINDS if kind.accepts(path, options))


def default_name(source: str) -> str:
    """The datastore name a source gets without ``--name``: its base name (an S3 URL's last
    prefix component, or its bucket; an archive's file name less its suffix)."""
    return _kind(source, SourceOptions()).name(source)


def open_source(
    path: str, warn: Warn | None, options: SourceOptions, place: Place
) -> tuple[Source, str]:
    """The source for ``path`` (a local folder or file, an s3:// URL, an archive URL, or the
    staged archive in ``options``) and its identity, the origin recorded on its versions.

    Raises:
        UsageError: ``options.pinned`` (``--no-copy``) for a source other than ``s3://``.
    """
    if options.pinned and not path.startswith("s3://"):
        raise UsageError(
            f"--no-copy references objects where they are: it takes an s3://bucket/prefix, "
            f"not {path!r}; nothing was stored",
            rule="--no-copy SOURCE is s3://bucket[/prefix]",
        )
    return _kind(path, options).open(path, warn, options, place)
