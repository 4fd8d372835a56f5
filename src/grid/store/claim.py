"""Which catalog a storage prefix belongs to: the claim marker.

A storage prefix (an owner's folder of packs and manifests) is written by exactly one catalog:
only that catalog knows which objects are live, so a second one would treat them as garbage.
The first catalog to write claims the prefix with a small JSON object, ``claim.json``, stored
only if absent (``ObjectStore.put_if_absent``); every later writer reads it and goes on only if
it names its own catalog.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from grid.errors import IntegrityError, NotFoundError
from grid.objects.base import ObjectStore

CLAIM_KEY = "claim.json"


@dataclass(frozen=True)
class Claim:
    """Who holds a prefix: the catalog's id, and where and when it first wrote (for
    messages)."""

    catalog_id: str
    host: str = ""
    home: str = ""
    claimed_at: float = 0.0


def read_claim(objects: ObjectStore) -> Claim | None:
    """The prefix's claim, or None if nobody has claimed it yet.

    Raises:
        IntegrityError: the marker is not a claim grid wrote.
    """
    try:
        raw = objects.get(CLAIM_KEY)
    except NotFoundError:
        return None
    try:
        fields = json.loads(raw)
        return Claim(
            catalog_id=str(fields["catalog_id"]),
            host=str(fields.get("host", "")),
            home=str(fields.get("home", "")),
            claimed_at=float(fields.get("claimed_at", 0.0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"the storage's {CLAIM_KEY} is not a grid claim: {exc}") from exc


def claim(objects: ObjectStore, catalog_id: str, host: str, home: str) -> Claim:
    """Claim the prefix for ``catalog_id`` unless somebody has; return the claim in force
    (compare its ``catalog_id`` with yours)."""
    while True:
        held = read_claim(objects)
        if held is not None:
            return held
        mine = Claim(catalog_id, host, home, time.time())
        body = json.dumps({"grid_claim": 1, **asdict(mine)}, indent=1).encode()
        if objects.put_if_absent(CLAIM_KEY, body):
            return mine
        # lost a race: the winner's claim is there now (read again)
