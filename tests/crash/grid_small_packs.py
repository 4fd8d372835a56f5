"""``python -m tests.crash.grid_small_packs ARGS``: the grid CLI with 1 MiB packs (32 MiB
otherwise), so that the crash matrix's few-MiB trees span several packs as big datasets do,
and a create stopped halfway has whole packs for its rerun to keep."""

import grid.store.pack
from grid.cli.app import main

grid.store.pack.TARGET_SIZE = 1 << 20
main()
