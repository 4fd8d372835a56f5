"""Use cases (L3), one module per operation; they combine the catalog and the store."""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from grid.service.context import Context

__all__ = ["Context"]


def __getattr__(name: str) -> object:
    """``Context``, imported on first use: a module of this package imports no more than it
    needs (``home_guard``, ``names``: not the store)."""
    if name != "Context":
        raise AttributeError(f"module 'grid.service' has no attribute {name!r}")
    from grid.service.context import Context

    return Context
