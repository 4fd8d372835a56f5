"""Catalog (L2): datastores, versions and statuses in SQL (SQLite by default, PostgreSQL at scale).

The only package that imports SQLAlchemy and Alembic; it hands out plain records.
``quick_read`` reads an embedded SQLite catalog without them (the CLI's fast read path).
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from grid.catalog.accounts import Accounts
    from grid.catalog.catalog import Catalog

__all__ = ["Accounts", "Catalog"]


def __getattr__(name: str) -> object:
    """``Accounts`` and ``Catalog``, imported on first use (SQLAlchemy costs ~0.2 s)."""
    if name == "Accounts":
        from grid.catalog.accounts import Accounts

        return Accounts
    if name == "Catalog":
        from grid.catalog.catalog import Catalog

        return Catalog
    raise AttributeError(f"module 'grid.catalog' has no attribute {name!r}")
