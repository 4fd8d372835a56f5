"""A GRID_HOME on a network filesystem is used by one host only (issue 11): its SQLite files
cannot be shared between machines, so a second host is refused with one line and nothing of
the first host's is touched."""

from __future__ import annotations

import os

from grid.service.home_guard import NETWORK_FS, filesystem_type

MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /home rw,relatime shared:20 - nfs4 server:/export/home rw,vers=4.2
41 40 0:36 / /home/me/local\040disk rw,relatime - xfs /dev/sdb1 rw
42 22 0:37 / /scratch rw - lustre 10.0.0.1@tcp:/scratch rw
43 22 0:38 / /mnt/s3 rw - fuse.s3fs s3fs rw
"""


def test_filesystem_type_reads_the_innermost_mount(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    kind = lambda p: filesystem_type(p, str(info))  # noqa: E731
    assert kind("/home/me/.grid") == "nfs4"
    assert kind("/home/me/local disk/.grid") == "xfs"  # \040 is a space
    assert kind("/homework") == "ext4"  # a name that merely starts like /home
    assert kind("/scratch/me/grid") == "lustre"
    assert kind("/mnt/s3/x") == "fuse.s3fs"
    assert {"nfs4", "lustre", "fuse.s3fs"} <= NETWORK_FS and "xfs" not in NETWORK_FS


def test_a_second_host_on_a_network_home_is_refused(cli, tmp_path, home):
    src = tmp_path / "data"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    here = filesystem_type(str(tmp_path))
    as_network = {"GRID_NETWORK_FS": f"other,{here}"}  # pretend tmp_path's type is shared

    assert cli("datastore", "create", str(src), GRID_HOST_ID="node-1", **as_network).code == 0
    assert (home / "host-pin").read_text().strip() == "node-1"
    before = sorted(os.listdir(home))
    for args in (["datastore"], ["datastore", "create", str(src)], ["datastore", "gc"]):
        r = cli(*args, GRID_HOST_ID="node-2", **as_network)
        assert r.code == 7, r.err
        assert len(r.err.strip().splitlines()) == 1
        assert "network filesystem" in r.err and "'node-1'" in r.err and "grid server" in r.err
    assert sorted(os.listdir(home)) == before
    again = cli("datastore", "show", "data", "--json", GRID_HOST_ID="node-1", **as_network)
    assert again.code == 0 and '"status": "succeeded"' in again.out
    # on a local disk nothing is pinned or checked
    assert cli("datastore", GRID_HOST_ID="node-3").code == 0
