"""Use cases (L3), one module per operation; they combine the catalog and the store."""

from grid.service.context import Context

__all__ = ["Context"]
