"""Object backends: key -> bytes stores behind one small interface (L1)."""

from grid.objects.base import ObjectInfo, ObjectStore, validate_key
from grid.objects.local import LocalDirectory
from grid.objects.memory import MemoryStore

__all__ = ["LocalDirectory", "MemoryStore", "ObjectInfo", "ObjectStore", "validate_key"]
