"""grid.torch logged in to a server: the same datasets read a team-mode version, in forked
and spawned DataLoader workers, through the server's object URLs."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

import grid.torch as gt
from grid.client.remote import RemoteClient
from tests.team import new_user

pytestmark = pytest.mark.slow  # a `grid server`


def _as_list(batch):
    return batch


def test_both_datasets_read_a_team_mode_version_in_workers(
    team_server, mixed_tree, tmp_path, monkeypatch
):
    database, url = team_server
    root, files = mixed_tree
    _, key = new_user(database)
    monkeypatch.setenv("GRID_URL", url)
    monkeypatch.setenv("GRID_API_KEY", key)
    monkeypatch.setenv("GRID_CONFIG_DIR", str(tmp_path / "cfg"))
    home = str(tmp_path / "home")
    with RemoteClient(url, key, home) as client:
        client.create(str(root), "cats")
    regular = {p: d for p, d in files.items() if not (root / p).is_symlink()}
    it = gt.IterableDataset("cats", shuffle=True, seed=2, batch_size=3, home=home)
    for context in ("fork", "spawn"):
        loader = DataLoader(
            it, batch_size=3, num_workers=2, collate_fn=_as_list, multiprocessing_context=context
        )
        got = [item for batch in loader for item in batch]
        assert sorted(p for p, _ in got) == sorted(regular)
        assert all(data == regular[p] for p, data in got)
    mapped = gt.Dataset("cats:1", prefix="train", home=home)
    assert {p: d for p, d in (mapped[i] for i in range(len(mapped)))} == {
        p: d for p, d in regular.items() if p.startswith("train/")
    }
    it.close()
    mapped.close()
