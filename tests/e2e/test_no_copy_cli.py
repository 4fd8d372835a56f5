"""``grid datastore create s3://... --no-copy`` through the CLI and the mount: a referenced
object overwritten since is EIO through the mount and a one-line error from ``cat``, never
other bytes; the rest of the version reads on."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid

import boto3
import pytest

from tests.e2e.conftest import GRID

pytestmark = pytest.mark.s3


def _mounts() -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if line.split()[2] == "fuse.grid"]


@pytest.mark.skipif(
    shutil.which("fusermount3") is None or not os.path.exists("/dev/fuse"), reason="no FUSE"
)
def test_a_changed_reference_is_eio_through_the_mount_and_one_line_from_cat(
    home, tmp_path, seaweedfs_endpoint
):
    s3 = boto3.client("s3", endpoint_url=seaweedfs_endpoint)
    bucket = f"nc-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)  # keeps no versions: pins are ETags
    good, hurt = os.urandom(70_000), os.urandom(70_000)
    s3.put_object(Bucket=bucket, Key="p/good.bin", Body=good)
    s3.put_object(Bucket=bucket, Key="p/hurt.bin", Body=hurt)
    env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0"}

    def run(*args):
        return subprocess.run([*GRID, *args], capture_output=True, text=True, env=env, timeout=60)

    made = run(
        "datastore", "create", f"s3://{bucket}/p", "--name", "r", "--no-copy",
        "--endpoint-url", seaweedfs_endpoint,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("created r:1: 2 files, 140.0 kB")
    s3.put_object(Bucket=bucket, Key="p/hurt.bin", Body=os.urandom(70_000))
    mp = tmp_path / "mnt"
    try:
        assert run("datastore", "mount", "r:1", str(mp)).returncode == 0
        assert (mp / "good.bin").read_bytes() == good
        with pytest.raises(OSError) as info:
            (mp / "hurt.bin").read_bytes()
        assert info.value.errno == errno.EIO
        log = (home / "logs" / "mount-r-1.log").read_text()
        assert "hurt.bin" in log and f"s3://{bucket}/p/hurt.bin changed" in log
    finally:
        for m in _mounts():
            if m.startswith(str(tmp_path)):
                subprocess.run(["fusermount3", "-u", "-z", m], check=False)
    cat = run("datastore", "cat", "r:1", "hurt.bin")
    assert cat.returncode == 6 and cat.stdout == ""
    (line,) = cat.stderr.strip().splitlines()
    assert line.startswith("grid: error: ") and f"s3://{bucket}/p/hurt.bin changed" in line
    assert "without --no-copy" in line
    refused = run("datastore", "create", str(tmp_path), "--no-copy")
    assert refused.returncode == 2 and "takes an s3://bucket/prefix" in refused.stderr
