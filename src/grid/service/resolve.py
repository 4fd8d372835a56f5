"""Find the version a reader means: a given number, or the latest succeeded one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


def hold(ctx: Context, name: str, number: int | None) -> VersionInfo:
    """``readable_version``, registered as being read (``grid.store.readers``) so that it
    cannot be deleted meanwhile; the caller releases ``ctx.store.readers.release(v.ref)``."""
    v = readable_version(ctx, name, number)
    ctx.store.readers.hold(v.ref)
    try:
        return readable_version(ctx, name, v.number)  # not deleted before the hold took
    except BaseException:
        ctx.store.readers.release(v.ref)
        raise


@contextmanager
def reading(ctx: Context, name: str, number: int | None) -> Iterator[VersionInfo]:
    """``hold`` the version for the ``with`` block."""
    v = hold(ctx, name, number)
    try:
        yield v
    finally:
        ctx.store.readers.release(v.ref)


@contextmanager
def held_until_closed(ctx: Context, name: str, number: int | None) -> Iterator[VersionInfo]:
    """``hold`` the version for a reader that outlives the ``with`` block (a stream, an open
    file, a snapshot): released here only if the block fails; the reader releases it when
    closed."""
    v = hold(ctx, name, number)
    try:
        yield v
    except BaseException:
        ctx.store.readers.release(v.ref)
        raise
