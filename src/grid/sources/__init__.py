"""Sources (L2): where a version's files come from, as a stream of entries in path order."""

from grid.sources.base import Source, SourceEntry
from grid.sources.local import LocalSource

__all__ = ["LocalSource", "Source", "SourceEntry"]
