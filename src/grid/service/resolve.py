"""Find the version a reader means: a given number, or the latest succeeded one."""

from __future__ import annotations

from grid.errors import VersionNotFoundError, VersionNotReadyError
from grid.records import SUCCEEDED, VersionInfo
from grid.service.context import Context


def readable_version(ctx: Context, name: str, number: int | None) -> VersionInfo:
    """Return the version to read: ``number``, or the newest succeeded one if None.

    Raises:
        DatastoreNotFoundError, VersionNotFoundError: nothing by that name or number.
        VersionNotReadyError: the version has not succeeded (yet).
    """
    if number is None:
        ready = [v for v in ctx.catalog.versions(name) if v.status == SUCCEEDED]
        if not ready:
            raise VersionNotFoundError(
                f"datastore {name!r} has no succeeded version yet", datastore=name, version=0
            )
        return ready[-1]
    v = ctx.catalog.version(name, number)
    if v.status != SUCCEEDED:
        raise VersionNotReadyError(
            f"{v.ref} is {v.status}{': ' + v.reason if v.reason else ''}; only succeeded "
            "versions can be read",
            status=v.status,
        )
    return v
