"""Catalog (L2): datastores, versions and statuses in SQL (SQLite by default, PostgreSQL at scale).

The only package that imports SQLAlchemy and Alembic; it hands out plain records.
"""

from grid.catalog.accounts import Accounts
from grid.catalog.catalog import Catalog

__all__ = ["Accounts", "Catalog"]
