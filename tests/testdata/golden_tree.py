"""The tree inside each golden store: deterministic, so tests can rebuild what it must read."""

from __future__ import annotations

import os


def golden_files() -> dict[str, bytes]:
    log = b"".join(b"%08d the golden store must stay readable\n" % i for i in range(40_000))
    return {
        "README.txt": b"golden datastore, format 1.0\n",
        "empty.bin": b"",
        "data/log.txt": log,  # > 1 MiB: several CDC chunks, zstd-compressed
        "data/raw.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8,
        "data/ünï.txt": "ünïcødé\n".encode(),
    }


def write_golden_tree(root: str) -> None:
    for rel, data in golden_files().items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    os.symlink("data/log.txt", os.path.join(root, "log-link"))
