"""The one Python API (L4)."""

from grid.client.client import Client

__all__ = ["Client"]
