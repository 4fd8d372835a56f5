"""Refuse to write storage that another installation's catalog has claimed.

Every writer (create, delete, gc) calls ``ensure_owned`` first: the first catalog to write a
prefix claims it (``grid.store.claim``); any other is refused with one line, before it changes
anything. Reading is never refused: an installation reads only versions its own catalog holds.
"""

from __future__ import annotations

import time

from grid.errors import StorageClaimedError
from grid.service.context import Context
from grid.store.claim import CLAIM_KEY, claim


def ensure_owned(ctx: Context) -> None:
    """Claim ``ctx``'s storage for its catalog, or check that it already has.

    Raises:
        StorageClaimedError: another catalog claimed it.
    """
    if ctx.server_checked:
        return  # the server's storage, written only through it
    mine = ctx.catalog.catalog_id
    held = claim(ctx.store.objects, mine, ctx.host_id, ctx.home)
    if held.catalog_id == mine:
        return
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(held.claimed_at))
    where = f"{held.host}:{held.home}" if held.host else "another machine"
    raise StorageClaimedError(
        f"{ctx.storage} belongs to another grid installation (catalog {held.catalog_id[:8]}, "
        f"first used from {where} on {when}); this one (catalog {mine[:8]}) must not write "
        "there: set GRID_STORAGE_URL to a prefix of its own, or share datastores through "
        f"`grid server` (if that installation is gone for good, delete {CLAIM_KEY} there)",
        catalog_id=held.catalog_id,
    )
