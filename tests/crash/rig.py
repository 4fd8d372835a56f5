"""What crash trials share: source trees on disk, the same tree as a served .tar.gz and under
an S3 prefix, a tmpfs for full disks, and looks into a GRID_HOME (its packs and manifests)."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grid
from tests.archive_server import tar_gz

Files = dict[str, bytes]


def random_tree(seed: int, files: int, low: int, high: int, prefix: str = "") -> Files:
    """``files`` files of random bytes (sizes in [low, high)) in a few folders, and one text
    file that compresses well; the same seed always gives the same tree."""
    rng = random.Random(seed)
    tree = {
        f"{prefix}d{i % 5}/{i:03d}.bin": rng.randbytes(rng.randrange(low, high))
        for i in range(files)
    }
    tree[f"{prefix}notes.txt"] = b"".join(b"line %06d of %d\n" % (i, seed) for i in range(5000))
    return tree


def write_tree(root: Path, tree: Files) -> Path:
    for rel, data in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@dataclass
class Rig:
    """Trees written once under ``root`` (``tree(name)``: their folder, ``trees[name]``: their
    bytes), the main tree served as an archive and put under an S3 prefix when those are
    given, and per-op calibration figures (``Calibration``) filled in by the first trial."""

    root: Path
    archive_url: str | None = None
    s3_endpoint: str | None = None
    s3_source: str | None = None  # s3://bucket/prefix holding the main tree
    trees: dict[str, Files] = field(default_factory=dict)
    calibrated: dict[str, Calibration] = field(default_factory=dict)

    def tree(self, name: str) -> Path:
        return self.root / "trees" / name


@dataclass(frozen=True)
class Calibration:
    """A whole, unstopped run of an op: its seconds, those from its milestone (the work has
    begun) to its end, the bytes it stored (a create's ``stored_bytes``) and how much
    GRID_HOME grew."""

    seconds: float
    work: float
    stored: int
    growth: int


TREES = {  # name -> (seed, files, smallest, largest); ~8 MiB for the main tree
    "main": (1, 40, 60_000, 350_000),
    "small": (2, 3, 1_000, 5_000),
    "big": (3, 16, 300_000, 500_000),  # gc: dropped with the first version, repacked away
    "shared": (4, 6, 200_000, 400_000),  # gc: kept, moved into a new pack
    "fresh": (5, 6, 200_000, 400_000),
    "doomed": (6, 6, 100_000, 200_000),  # gc: a deleted datastore's pack, deleted whole
}
COMPOSED = {"gc1": ("big", "shared"), "gc2": ("shared", "fresh")}  # folders of several trees


def make_rig(root: Path, archive_server=None, s3_endpoint: str | None = None, bucket=None) -> Rig:
    """Write the trees; serve the main one as ``/main.tar.gz`` on ``archive_server`` and put
    it under ``s3://BUCKET/main/`` when those are given."""
    rig = Rig(root)
    for name, (seed, files, low, high) in TREES.items():
        prefix = "" if name in ("main", "small") else f"{name}/"
        rig.trees[name] = random_tree(seed, files, low, high, prefix)
    for name, parts in COMPOSED.items():
        rig.trees[name] = {k: v for part in parts for k, v in rig.trees[part].items()}
    for i in range(4):  # the versions that delete and --keep-last start from
        rig.trees[f"v{i}"] = {
            **rig.trees["small"],
            **random_tree(10 + i, 4, 100_000, 300_000, f"v{i}/"),
        }
    for name, tree in rig.trees.items():
        write_tree(rig.tree(name), tree)
    if archive_server is not None:
        archive_server.served.files["/main.tar.gz"] = tar_gz(rig.trees["main"])
        rig.archive_url = archive_server.url("/main.tar.gz")
    if s3_endpoint is not None and bucket is not None:
        import boto3

        s3 = boto3.client("s3", endpoint_url=s3_endpoint)
        for rel, data in rig.trees["main"].items():
            s3.put_object(Bucket=bucket, Key=f"main/{rel}", Body=data)
        rig.s3_endpoint, rig.s3_source = s3_endpoint, f"s3://{bucket}/main"
    return rig


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes at ``path`` for the block; raises ``NoTmpfs`` where mounting
    is not allowed (not root, no mount namespace rights)."""
    path.mkdir(parents=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if r.returncode != 0:
        raise NoTmpfs(r.stderr.decode().strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class NoTmpfs(RuntimeError):
    """A tmpfs (for a full disk) cannot be mounted here."""


def resize(path: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def stored_objects(home: Path, kind: str) -> dict[str, int]:
    """Whole objects (no ``.tmp`` partial) under ``objects/local/KIND`` (packs, manifests):
    id -> size."""
    found: dict[str, int] = {}
    for d, _, names in os.walk(home / "objects" / "local" / kind):
        for n in names:
            if not n.endswith(".tmp"):
                found[n] = os.path.getsize(os.path.join(d, n))
    return found


def referenced_packs(client: grid.Client) -> set[str]:
    """Packs some version's manifest points into (white box: the manifests' pack lists)."""
    used: set[str] = set()
    for d in client.list():
        for v in client.versions(d.name):
            if v.status == "succeeded":
                reader = client._ctx.store.open_manifest(v.manifest_id)
                try:
                    used.update(reader.pack_ids)
                finally:
                    reader.close()
    return used
