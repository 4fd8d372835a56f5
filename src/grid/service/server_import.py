"""Team mode: a server makes a version from an archive URL or an S3 prefix itself (the seed:
"the link will be downloaded, extracted and mounted for you"), not through the laptop that
asked.

It is the embedded create, run by the server on the owner's part of its storage: the owner's
checked packs are loaded into a scratch blob index first (so only new blobs are stored), the
packs it writes go straight to their published keys (the server made them: nothing to
check), and they are registered for the owner once the version has succeeded. A pack is
registered only after the version that uses it succeeded; until then gc, which deletes only
registered packs, cannot touch it.
"""

from __future__ import annotations

import dataclasses

from grid.catalog.packs import PackRegistry
from grid.errors import ConflictError
from grid.records import VersionInfo
from grid.reports import Progress
from grid.service import create
from grid.service.context import Context
from grid.store.pack import pack_key, trailer_span
from grid.tree import Warn

_PAGE = 5000


def import_source(
    ctx: Context,
    packs: PackRegistry,
    owner_id: int,
    source: str,
    name: str,
    *,
    options: create.SourceOptions,
    progress: Progress | None = None,
    warn: Warn | None = None,
    skip_unchanged: bool = False,
) -> VersionInfo:
    """Make (or resume) the next version of ``name`` from ``source`` (see ``create.create``);
    the owner's packs are learnt once it holds the version (gc drops none then)."""

    def learn() -> None:
        after = 0
        while True:
            page = packs.since(owner_id, after, _PAGE)
            ctx.store.index.learn_packs([(pid, size, trailer) for _, pid, size, trailer in page])
            if page:
                after = page[-1][0]
            if len(page) < _PAGE:
                break

    version = create.create(
        dataclasses.replace(ctx, on_held=learn),
        source,
        name,
        progress=progress,
        warn=warn,
        skip_unchanged=skip_unchanged,
        options=options,
    )
    register_packs(ctx, packs, owner_id, version.manifest_id)
    return version


def register_packs(ctx: Context, packs: PackRegistry, owner_id: int, manifest_id: str) -> None:
    """Record the packs a version uses that the owner's record lacks (the ones just written;
    again for a version whose import died between its success and this)."""
    reader = ctx.store.open_manifest(manifest_id)
    try:
        pack_ids = reader.pack_ids
    finally:
        reader.close()
    known = packs.verified(owner_id, pack_ids)
    objects = ctx.store.objects
    for pid in pack_ids:
        if pid in known:
            continue
        key = pack_key(pid)
        size = objects.size(key)
        _, length = trailer_span(objects.get_range(key, size - 12, 12))
        try:
            packs.register(owner_id, pid)
        except ConflictError:
            continue  # a commit is checking it: it will record it
        packs.mark_verified(owner_id, pid, size, objects.get_range(key, size - length, length))
