#!/usr/bin/env python3
"""Read every file under a folder with N threads (open, read 1 MiB blocks, close) and print
files/s and MB/s: the reader used to compare a grid mount with local disk.

    python3 bench/read_tree.py DIR [THREADS]
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def read_file(path: str) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while block := f.read(1 << 20):
            n += len(block)
    return n


def main() -> None:
    root = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    paths = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(read_file, paths, chunksize=64))
    seconds = time.perf_counter() - start
    print(
        f"{root} x{threads}: {len(paths) / seconds:,.0f} files/s, {total / seconds / 1e6:,.0f} MB/s"
    )


if __name__ == "__main__":
    main()
