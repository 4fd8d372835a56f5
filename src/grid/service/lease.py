"""Leases on versions being created: who holds one, renewing it, and telling a stopped create.

A create holds its version with a lease (host, pid, expiry) that a background thread renews
every third of its length. A version whose create was interrupted, whose process on this
host is gone, or whose lease has lapsed (a crash on any host, a machine that went away) may be
resumed or failed by anyone; the create that lost it finds out at its next renewal or at
the end (``Catalog.set_status`` with its lease) and never marks the version.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

from grid.errors import GridError
from grid.records import INTERRUPTED, Lease, VersionInfo
from grid.service.context import Context


def my_lease(ctx: Context) -> Lease:
    """The lease a create of this process takes."""
    return Lease(ctx.host_id, os.getpid(), ctx.lease_seconds)


def stopped(ctx: Context, v: VersionInfo) -> bool:
    """Whether the create of unfinished version ``v`` has certainly stopped."""
    if v.status == INTERRUPTED:
        return True
    if v.host == ctx.host_id:
        if v.pid == os.getpid():
            return False
        if not alive(v.pid):
            return True  # this host can tell at once, without waiting for the lease
    if v.lease_expires_at is None:  # made before leases: only a local process can be asked
        return v.host != ctx.host_id
    return v.lease_expires_at <= datetime.now(UTC)


def alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Renews ``lease`` on version ``name:number`` in a daemon thread until ``stop``;
    ``lost`` is set once the version was taken over (or deleted)."""

    def __init__(self, ctx: Context, name: str, number: int, lease: Lease) -> None:
        self.lost = threading.Event()
        self._done = threading.Event()
        self.lease = lease
        self._args = (ctx, name, number, lease)
        self._thread = threading.Thread(target=self._run, name="grid-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ctx, name, number, lease = self._args
        while not self._done.wait(lease.seconds / 3):
            try:
                held = ctx.catalog.renew(name, number, lease)
            except GridError:  # a busy catalog: try again at the next beat
                continue
            if not held:
                self.lost.set()
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
