"""The one Python API (L4)."""

from grid.client.client import Client
from grid.service.create import CreateProgress

__all__ = ["Client", "CreateProgress"]
