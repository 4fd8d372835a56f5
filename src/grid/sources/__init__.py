"""Sources (L2): where a version's files come from, as a stream of entries in path order."""

from grid.sources.local import LocalSource
from grid.tree import Source, SourceEntry

__all__ = ["LocalSource", "Source", "SourceEntry"]
