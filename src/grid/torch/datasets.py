"""PyTorch datasets over a version's files, read from the packs without a mount or a copy.

``Dataset``: map-style, random access by index through the shared verified reader and blob
cache (what ``open`` and the mount use). ``IterableDataset``: every file of the version once
per epoch, shared between distributed ranks and ``DataLoader`` workers (``grid.torch.order``),
shuffled by packs then within a window, read ahead in batches whose neighbouring blobs are
read together, resumable mid-epoch. Every byte is checked against its BLAKE3 id; a damaged
one raises ``grid.IntegrityError`` naming the file, in the worker that read it.

An item is ``(path, bytes)``, or ``transform(path, bytes)`` with a ``transform``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch.distributed
import torch.utils.data

from grid.errors import IntegrityError
from grid.torch.order import epoch_order, rank_share, worker_share
from grid.torch.source import VersionFiles

Transform = Callable[[str, bytes], Any]
_BATCH_BYTES = 8 << 20  # files read together, read ahead
_BATCH_FILES = 256
_AHEAD = 2  # batches being read while one is handed out


class Dataset(torch.utils.data.Dataset[Any]):
    """Map-style: item ``i`` is the ``i``-th file under ``prefix`` (ending with one of
    ``suffixes``) of version ``ref``, in storage order. See the module docstring; ``home``
    and ``cache_size`` as ``grid.connect``."""

    def __init__(
        self,
        ref: str,
        transform: Transform | None = None,
        prefix: str = "",
        suffixes: Iterable[str] | None = None,
        *,
        home: str | None = None,
        cache_size: int | None = None,
    ) -> None:
        self.files = VersionFiles(ref, prefix, suffixes, home=home, cache_size=cache_size)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Any:
        files = self.files
        path = files.paths[index]
        snapshot = files.snapshot()
        entry = snapshot.entry(files.ids[index])
        try:
            data = snapshot.read(entry, 0, files.sizes[index]) if files.sizes[index] else b""
        except IntegrityError as exc:  # name the file, as the iterable dataset does
            raise IntegrityError(f"{path}: {exc.message}", **{**exc.attrs, "path": path}) from exc
        return (path, data) if self.transform is None else self.transform(path, data)

    def close(self) -> None:
        """Let the version go (the dataset opens it again if read)."""
        self.files.close()


class IterableDataset(torch.utils.data.IterableDataset[Any]):
    """Every file under ``prefix`` (ending with one of ``suffixes``) of version ``ref``, once
    per epoch across ranks and workers. ``shuffle``: packs, then files within ``window``
    files, by ``seed`` and the epoch (``set_epoch``). ``batch_size``: the ``DataLoader``'s,
    for the order and resume (``grid.torch.order``). ``rank``/``world_size``: default
    ``torch.distributed``'s, else ``RANK``/``WORLD_SIZE``, else one rank."""

    def __init__(
        self,
        ref: str,
        transform: Transform | None = None,
        prefix: str = "",
        suffixes: Iterable[str] | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        window: int = 4096,
        batch_size: int = 1,
        rank: int | None = None,
        world_size: int | None = None,
        home: str | None = None,
        cache_size: int | None = None,
    ) -> None:
        self.files = VersionFiles(ref, prefix, suffixes, home=home, cache_size=cache_size)
        self.transform = transform
        self.shuffle, self.seed, self.window, self.batch_size = shuffle, seed, window, batch_size
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._skip = 0  # samples of the epoch consumed before a resume
        self._yielded = 0  # samples this process handed out this epoch

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order from the next iteration (from its start)."""
        self.epoch, self._skip = epoch, 0

    def state_dict(self, samples: int | None = None) -> dict[str, int]:
        """Where this rank stands: ``samples`` of the epoch consumed by the training loop
        (default: what this process handed out, right with ``num_workers=0``)."""
        done = self._skip + self._yielded if samples is None else samples
        return {"epoch": self.epoch, "seed": self.seed, "samples": done, "files": len(self)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Go on from ``state`` (``state_dict``): the rest of its epoch, in the same order."""
        if state.get("files", len(self)) != len(self):
            raise ValueError("the state is of a dataset of another number of files")
        self.epoch, self.seed, self._skip = state["epoch"], state["seed"], state["samples"]

    def __len__(self) -> int:
        return len(self.files)

    def _place(self) -> tuple[int, int, int, int]:
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return rank, world, worker, workers

    def mine(self) -> list[int]:
        """Positions (into the file list) this process reads this epoch, in order."""
        files = self.files
        rank, world, worker, workers = self._place()
        if self.shuffle:
            order: Any = epoch_order(
                files.packs, seed=self.seed, epoch=self.epoch, window=self.window
            )
        else:
            order = range(len(files))
        share = rank_share(order, rank, world)
        return worker_share(share, worker, workers, self.batch_size, self._skip)

    def __iter__(self) -> Iterator[Any]:
        self._yielded = 0
        files, transform = self.files, self.transform
        snapshot = files.snapshot()
        with ThreadPoolExecutor(2, thread_name_prefix="grid-torch") as pool:
            inflight: deque[tuple[list[int], Future[list[bytes]]]] = deque()
            try:
                for batch in _batches(self.mine(), files.sizes):
                    ids = [files.ids[i] for i in batch]
                    inflight.append((batch, pool.submit(snapshot.read_files, ids)))
                    if len(inflight) > _AHEAD:
                        yield from self._hand_out(*inflight.popleft(), transform)
                while inflight:
                    yield from self._hand_out(*inflight.popleft(), transform)
            finally:
                for _, fut in inflight:
                    fut.cancel()

    def _hand_out(
        self, batch: list[int], fut: Future[list[bytes]], transform: Transform | None
    ) -> Iterator[Any]:
        paths = self.files.paths
        for i, data in zip(batch, fut.result(), strict=True):
            self._yielded += 1
            yield (paths[i], data) if transform is None else transform(paths[i], data)

    def close(self) -> None:
        """Let the version go (the dataset opens it again if read)."""
        self.files.close()


def _batches(positions: list[int], sizes: Any) -> Iterator[list[int]]:
    """``positions`` in groups read together: up to ``_BATCH_BYTES`` or ``_BATCH_FILES``."""
    batch: list[int] = []
    total = 0
    for i in positions:
        batch.append(i)
        total += sizes[i]
        if total >= _BATCH_BYTES or len(batch) >= _BATCH_FILES:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch
