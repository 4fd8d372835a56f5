"""Storage URLs: ``s3://bucket[/prefix]`` and ``file:///folder``, opened as object stores.

The embedded client and a team-mode server both keep objects at such a URL (the client one
folder further in, per owner); each says in its own words which URLs it takes.
"""

from __future__ import annotations

import os

from grid.errors import UsageError
from grid.objects.base import ObjectStore
from grid.objects.local import LocalDirectory


def open_url(url: str, folder: str = "", *, durable: bool = True) -> ObjectStore | None:
    """The store at ``url`` (``folder`` inside it, if given); None for another scheme.

    Raises:
        UsageError: a malformed ``s3://`` URL.
    """
    if url.startswith("file:///"):
        root = url.removeprefix("file://")
        return LocalDirectory(os.path.join(root, folder) if folder else root, durable=durable)
    if not url.startswith("s3://"):
        return None
    from grid.objects.s3 import S3Store, parse_url

    try:
        bucket, prefix = parse_url(url)
    except ValueError as exc:
        raise UsageError(str(exc), rule="s3://bucket[/prefix]") from exc
    return S3Store(bucket, "/".join(p for p in (prefix, folder) if p))
