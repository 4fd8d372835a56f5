"""grid.torch.order on its own: shares partition the epoch, and an in-order DataLoader's
round robin over the workers' batches gives back the rank's order, whatever the counts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from grid.torch.order import epoch_order, rank_share, worker_share

packs_lists = st.lists(st.integers(min_value=-1, max_value=6), max_size=300)


def _loader(shares: list[list[int]], batch: int) -> list[int]:
    """What an in-order DataLoader yields: batch j from worker j % W, until all are spent."""
    out, cursors, w = [], [0] * len(shares), 0
    while any(c < len(s) for c, s in zip(cursors, shares, strict=True)):
        if cursors[w] < len(shares[w]):
            out += shares[w][cursors[w] : cursors[w] + batch]
            cursors[w] += batch
        w = (w + 1) % len(shares)
    return out


@given(
    packs_lists,
    st.integers(0, 3),
    st.integers(1, 4),
    st.integers(1, 5),
    st.integers(1, 7),
    st.integers(1, 50),
)
def test_ranks_and_workers_share_each_epoch_once_in_the_ranks_order(
    packs, epoch, world, workers, batch, window
):
    order = epoch_order(packs, seed=5, epoch=epoch, window=window)
    assert sorted(order) == list(range(len(packs)))
    assert order == epoch_order(packs, seed=5, epoch=epoch, window=window)
    seen = []
    for rank in range(world):
        share = list(rank_share(order, rank, world))
        assert abs(len(share) - len(packs) / world) < 1
        parts = [worker_share(share, w, workers, batch) for w in range(workers)]
        assert _loader(parts, batch) == share
        for skip in (0, 1, batch, len(share) // 2):
            rest = [worker_share(share, w, workers, batch, skip) for w in range(workers)]
            assert _loader(rest, batch) == share[skip:]
        seen += share
    assert seen == order


def test_a_shuffle_moves_whole_pack_runs_with_their_empty_files():
    from itertools import permutations

    packs = [0, 0, -1, 0, 1, 1, -1, 2, 2, 2]
    runs = [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    whole = [[i for run in p for i in run] for p in permutations(runs)]
    orders = [epoch_order(packs, seed=1, epoch=e, window=1) for e in range(20)]  # runs only
    assert all(order in whole for order in orders)
    assert len({tuple(order) for order in orders}) > 1
