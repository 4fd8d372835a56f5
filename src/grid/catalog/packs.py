"""The packs each owner has in team mode, as the server has verified them.

A client never tells the server which packs exist: the server registers a pack when a commit
first references it, checks every blob in it, and only then marks it verified with its
trailer. Clients sync the verified trailers of their owner (``since``) to learn which blobs
are already stored, and nobody learns another owner's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy import exc as sa_exc

from grid.catalog.catalog import Catalog
from grid.catalog.models import Datastore, GonePack, Owner, Pack, Version
from grid.errors import ConflictError
from grid.records import UNFINISHED

_IN_BATCH = 500  # ids per IN (...): SQLite and PostgreSQL both take this many bound values
STALE = 60.0  # seconds after which an unfinished check is taken over (its server died)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class PackRegistry:
    """Packs per owner in the database of ``catalog``."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def _rows(
        self, owner_id: int, pack_ids: Iterable[str], *columns: Any, verified: bool = True
    ) -> list[Any]:
        """``columns`` of the owner's packs among ``pack_ids`` (only checked ones if
        ``verified``), asked for a bounded number of ids at a time."""
        ids = sorted(set(pack_ids))
        query = select(*columns).where(Pack.owner_id == owner_id)
        if verified:
            query = query.where(Pack.verified.is_(True))
        rows: list[Any] = []
        with self._catalog.transaction() as s:
            for start in range(0, len(ids), _IN_BATCH):
                rows.extend(
                    s.execute(query.where(Pack.pack_id.in_(ids[start : start + _IN_BATCH])))
                )
        return rows

    def verified(self, owner_id: int, pack_ids: Iterable[str]) -> dict[str, tuple[int, bytes]]:
        """``{pack_id: (size, trailer)}`` of those of ``pack_ids`` the owner has, verified."""
        rows = self._rows(owner_id, pack_ids, Pack.pack_id, Pack.size, Pack.trailer)
        return {pid: (size, trailer or b"") for pid, size, trailer in rows}

    def bytes_since(self, owner_id: int, pack_ids: Iterable[str], since: datetime) -> int:
        """Bytes of those of ``pack_ids`` recorded (checked) at ``since`` or later: what a
        version that began then stored anew."""
        rows = self._rows(owner_id, pack_ids, Pack.size, Pack.created_at)
        return sum(size for size, at in rows if _utc(at) >= _utc(since))

    def registered(self, owner_id: int, pack_ids: Iterable[str]) -> set[str]:
        """Those of ``pack_ids`` the owner has or is checking."""
        return {pid for (pid,) in self._rows(owner_id, pack_ids, Pack.pack_id, verified=False)}

    def register(self, owner_id: int, pack_id: str) -> None:
        """Note that ``pack_id`` is being checked, so that no other commit publishes it
        meanwhile. A registration left unfinished for ``STALE`` seconds (its server stopped
        mid-check) is taken over.

        Raises:
            ConflictError: it is registered already (being checked by another commit).
        """
        for _ in range(2):
            try:
                with self._catalog.transaction() as s:
                    s.add(
                        Pack(
                            owner_id=owner_id,
                            pack_id=pack_id,
                            size=0,
                            trailer=None,
                            verified=False,
                            created_at=self._catalog.now(),
                        )
                    )
                return
            except sa_exc.IntegrityError:
                if not self._drop_stale(owner_id, pack_id):
                    break
        raise ConflictError(
            f"pack {pack_id} is being checked by another commit; try again", transient=True
        )

    def _drop_stale(self, owner_id: int, pack_id: str) -> bool:
        """Remove an unfinished registration older than ``STALE``; whether there was one."""
        with self._catalog.transaction() as s:
            row = s.scalar(
                select(Pack)
                .where(Pack.owner_id == owner_id, Pack.pack_id == pack_id)
                .with_for_update()
            )
            cutoff = self._catalog.now() - timedelta(seconds=STALE)
            if row is None or row.verified or _utc(row.created_at) >= cutoff:
                return False
            s.delete(row)
            return True

    def mark_verified(self, owner_id: int, pack_id: str, size: int, trailer: bytes) -> None:
        """Record a checked pack: from now on its blobs count as stored for the owner. The
        row is made again, so that its ``seq`` is past every cursor handed out before."""
        with self._catalog.transaction() as s:
            s.execute(delete(Pack).where(Pack.owner_id == owner_id, Pack.pack_id == pack_id))
            s.flush()
            s.add(
                Pack(
                    owner_id=owner_id,
                    pack_id=pack_id,
                    size=size,
                    trailer=trailer,
                    verified=True,
                    created_at=self._catalog.now(),
                )
            )

    def unregister(self, owner_id: int, pack_id: str) -> None:
        """Drop a pack that failed its check (or was deleted)."""
        with self._catalog.transaction() as s:
            s.execute(delete(Pack).where(Pack.owner_id == owner_id, Pack.pack_id == pack_id))

    def drop_unless_busy(self, owner_id: int, pack_id: str) -> bool:
        """gc's drop of a pack no version needs: in one transaction that holds the owner's
        row (as every new or resumed version's does), refused (False) while any create of
        the owner holds a live lease, else the pack is unregistered and recorded as gone.

        A create learns what its owner stores only once it holds its lease (``gone_since``
        makes it forget what was dropped before), so it never reuses a pack gc drops."""
        with self._catalog.transaction() as s:
            s.get(Owner, owner_id, with_for_update=True)
            busy = s.scalar(
                select(func.count())
                .select_from(Version)
                .join(Datastore, Version.datastore_id == Datastore.id)
                .where(
                    Datastore.owner_id == owner_id,
                    Version.status.in_(UNFINISHED),
                    Version.lease_expires_at > self._catalog.now(),
                )
            )
            if busy:
                return False
            s.execute(delete(Pack).where(Pack.owner_id == owner_id, Pack.pack_id == pack_id))
            s.add(GonePack(owner_id=owner_id, pack_id=pack_id, gone_at=self._catalog.now()))
            return True

    def gone_since(self, owner_id: int, after: int, limit: int = 1000) -> list[tuple[int, str]]:
        """Packs of the owner gc dropped after cursor ``after``: ``(seq, pack_id)`` in order."""
        with self._catalog.transaction() as s:
            rows = s.execute(
                select(GonePack.seq, GonePack.pack_id)
                .where(GonePack.owner_id == owner_id, GonePack.seq > after)
                .order_by(GonePack.seq)
                .limit(limit)
            )
            return [(seq, pid) for seq, pid in rows]

    def listing(self, owner_id: int) -> list[tuple[str, int, datetime, bool]]:
        """Every pack of the owner: ``(pack_id, size, registered at, verified)``."""
        with self._catalog.transaction() as s:
            rows = s.execute(
                select(Pack.pack_id, Pack.size, Pack.created_at, Pack.verified).where(
                    Pack.owner_id == owner_id
                )
            )
            return [(pid, size, _utc(at), ok) for pid, size, at, ok in rows]

    def since(
        self, owner_id: int, after: int, limit: int = 1000
    ) -> list[tuple[int, str, int, bytes]]:
        """Verified packs of the owner registered after cursor ``after``:
        ``(seq, pack_id, size, trailer)`` in order. (Transactions commit out of ``seq`` order
        on PostgreSQL, so a client may miss a pack verified at the same moment: it then
        stores those blobs again, which costs space, never correctness.)"""
        with self._catalog.transaction() as s:
            rows = s.execute(
                select(Pack.seq, Pack.pack_id, Pack.size, Pack.trailer)
                .where(Pack.owner_id == owner_id, Pack.verified.is_(True), Pack.seq > after)
                .order_by(Pack.seq)
                .limit(limit)
            )
            return [(seq, pid, size, trailer or b"") for seq, pid, size, trailer in rows]
