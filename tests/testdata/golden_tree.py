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


def golden_files_v2() -> dict[str, bytes]:
    """The tree of a golden store's second version (since format 1.2's golden store): one
    file changed, one added, one removed."""
    files = dict(golden_files())
    files["data/ünï.txt"] = "ünïcødé, version 2\n".encode()
    files["data/added.txt"] = b"added in version 2\n"
    del files["data/raw.jpg"]
    return files


def write_golden_v2(root: str) -> None:
    """Turn a tree written by ``write_golden_tree`` into ``golden_files_v2``'s."""
    os.unlink(os.path.join(root, "data/raw.jpg"))
    for rel in ("data/ünï.txt", "data/added.txt"):
        with open(os.path.join(root, rel), "wb") as f:
            f.write(golden_files_v2()[rel])
