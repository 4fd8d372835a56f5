#!/usr/bin/env python3
"""Time the store's ingest in-process (no CLI start-up, no catalog): where the GIL-bound
pipeline itself stands against the read limit, warm or cold.

    .venv/bin/python bench/ingest_only.py /tmp/bench-data/small [--cold] [--fsync] [--repeat 3]

--cold drops the page cache first (root only; on a VM it clears only the guest's cache).
Profile it with py-spy:  py-spy record --threads -o prof.svg -- .venv/bin/python bench/...
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

from grid.objects import LocalDirectory
from grid.sources import LocalSource
from grid.store import ManifestWriter, Store
from grid.store.ingest import ingest


def one_run(src: str, cold: bool, fsync: bool) -> tuple[float, int, int]:
    root = tempfile.mkdtemp(prefix="grid-ingest-")
    try:
        store = Store(
            LocalDirectory(os.path.join(root, "objects"), durable=fsync),
            os.path.join(root, "index.sqlite"),
            os.path.join(root, "cache"),
        )
        os.sync()
        if cold:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        else:
            subprocess.run(f"tar cf - -C '{src}' . | cat >/dev/null", shell=True, check=True)
        start = time.perf_counter()
        manifest = ManifestWriter(os.path.join(root, "manifest.sqlite"))
        stats = ingest(LocalSource(src), store, manifest)
        store.objects.sync([])
        manifest.finish({})
        seconds = time.perf_counter() - start
        store.close()
        return seconds, stats.files, stats.bytes
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeat):
        seconds, files, size = one_run(args.src, args.cold, args.fsync)
        times.append(seconds)
        print(
            f"  {seconds:.2f} s  {files / seconds:,.0f} files/s  {size / seconds / 1e6:,.0f} MB/s"
        )
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    mode = f"{'cold' if args.cold else 'warm'}, {'fsync' if args.fsync else 'no fsync'}"
    print(
        f"median ({mode}): {med:.2f} s, {files / med:,.0f} files/s, "
        f"{size / med / 1e6:,.0f} MB/s, peak RSS {rss} MiB"
    )


if __name__ == "__main__":
    main()
