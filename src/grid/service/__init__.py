"""Use cases (L3), one module per operation; they combine the catalog and the store."""

from __future__ import annotations

import typing

from grid.lazy import lazy_names

if typing.TYPE_CHECKING:
    from grid.service.context import Context

__all__ = ["Context"]


# imported on first use: a module of this package imports no more than it needs
# (``home_guard``, ``names``: not the store)
__getattr__, __dir__ = lazy_names(__name__, {"Context": "grid.service.context"})
