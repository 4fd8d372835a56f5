"""Catalog (L2): datastores, versions and statuses in SQL (SQLite by default, PostgreSQL at scale).

The only package that imports SQLAlchemy and Alembic; it hands out plain records.
``quick_read`` reads an embedded SQLite catalog without them (the CLI's fast read path), and
``quick_write`` makes a create's few writes there.
"""

from __future__ import annotations

import typing

from grid.lazy import lazy_names

if typing.TYPE_CHECKING:
    from grid.catalog.accounts import Accounts
    from grid.catalog.catalog import Catalog

__all__ = ["Accounts", "Catalog"]


# imported on first use: SQLAlchemy costs ~0.2 s
__getattr__, __dir__ = lazy_names(
    __name__, {"Accounts": "grid.catalog.accounts", "Catalog": "grid.catalog.catalog"}
)
