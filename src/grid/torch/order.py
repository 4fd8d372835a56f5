"""Which files a DataLoader worker reads, in which order: torch-free, so that it is tested on
its own and the same in every process.

An epoch's order is the version's storage order, or, shuffled: the runs of files that share a
pack are shuffled (as litdata shuffles chunks), then the files within each window of
``window`` files (so reads stay within a few packs at a time). Both depend only on the seed
and the epoch. Each rank takes a contiguous share of that order (sizes differ by one at most:
every file is read once an epoch, none twice); within a rank, worker ``w`` of ``W`` takes the
rank's batches ``w, w + W, ...`` of ``batch_size`` files, which is the order in which an
in-order ``DataLoader`` with that batch size hands batches back. So what a training loop sees
is the rank's order whatever the number of workers, and resuming after ``n`` samples skips
the rank's first ``n``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def epoch_order(packs: Sequence[int], *, seed: int, epoch: int, window: int) -> list[int]:
    """Shuffled positions into the file list whose pack numbers are ``packs`` (in storage
    order; -1: an empty file, kept with the run it is in): runs of one pack shuffled, then
    files within windows of ``window``."""
    runs: list[list[int]] = []
    current = None
    for i, pack in enumerate(packs):
        if runs and (pack == current or pack == -1):  # an empty file goes with its neighbours
            runs[-1].append(i)
        else:
            runs.append([i])
            current = pack
    rng = random.Random(f"grid.torch:{seed}:{epoch}")
    rng.shuffle(runs)
    order = [i for run in runs for i in run]
    for start in range(0, len(order), max(1, window)):
        part = order[start : start + window]
        rng.shuffle(part)
        order[start : start + window] = part
    return order


def rank_share(order: Sequence[int], rank: int, world: int) -> Sequence[int]:
    """Rank ``rank``'s contiguous share of ``order`` (of ``world`` ranks)."""
    n = len(order)
    return order[rank * n // world : (rank + 1) * n // world]


def worker_share(
    share: Sequence[int], worker: int, workers: int, batch_size: int, skip: int = 0
) -> list[int]:
    """Worker ``worker``'s items of a rank's ``share``, less the rank's first ``skip`` items
    (consumed before a resume): the batches it makes of what is left."""
    batch = max(1, batch_size)
    rest = share[skip:]
    return [item for position, item in enumerate(rest) if (position // batch) % workers == worker]
