"""PyTorch datasets over a grid version: ``Dataset`` (map-style) and ``IterableDataset``
(sharded across ranks and workers, shuffled by packs, resumable), embedded or logged in.
Needs torch (``pip install 'grid-datastores[torch]'``); nothing else in grid imports it.
"""

from __future__ import annotations

from grid.torch.datasets import Dataset, IterableDataset

__all__ = ["Dataset", "IterableDataset"]
