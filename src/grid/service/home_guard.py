"""Keep one machine at a time on a GRID_HOME that lives on a network filesystem.

GRID_HOME holds SQLite files (the catalog, the index, the file state) in WAL mode, which
needs every process using them on one host: its shared-memory index does not work across
machines, and network filesystems' locks are not reliable enough for SQLite. On such a
filesystem (NFS, SMB, Ceph, Lustre, GPFS, sshfs...) the first host to open the home pins it
(``host-pin``, created exclusively); any other host is refused with one line. On a local disk
nothing is checked.
"""

from __future__ import annotations

import contextlib
import os

from grid.errors import UnsafeHomeError, storage_error

NETWORK_FS = frozenset(
    {
        *("nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "coda", "ceph"),
        *("glusterfs", "lustre", "gpfs", "beegfs", "panfs", "ocfs2", "gfs2", "davfs"),
        *("fuse.sshfs", "fuse.glusterfs", "fuse.ceph-fuse", "fuse.juicefs", "fuse.s3fs"),
        *("fuse.rclone", "fuse.gcsfuse", "fuse.goofys", "fuse.mountpoint-s3", "fuse.weed"),
        "fuse.davfs2",
    }
)
PIN = "host-pin"


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str:
    """The type of the filesystem holding ``path`` (or its nearest existing folder), as
    /proc/mounts names it; '' if unknown."""
    path = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        point = unescape_mount_field(fields[4])
        fstype = fields[fields.index("-", 6) + 1]
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def unescape_mount_field(field: str) -> str:
    """A path field of /proc/mounts or mountinfo (space, tab, newline and backslash are
    written as \\ooo)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def check_home(home: str, host_id: str, extra_network_fs: tuple[str, ...] = ()) -> None:
    """Pin ``home`` to ``host_id`` if it is on a network filesystem, or check the pin.

    Raises:
        UnsafeHomeError: another host already uses this home.
    """
    kind = filesystem_type(home)
    if kind not in NETWORK_FS and kind not in extra_network_fs:
        return
    pin = os.path.join(home, PIN)
    tmp = f"{pin}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(host_id + "\n")
        try:
            os.link(tmp, pin)  # atomic, also on NFS: the pin appears whole or not at all
            return
        except FileExistsError:
            pass
        with open(pin, encoding="utf-8", errors="replace") as f:
            holder = f.read().strip()
    except OSError as exc:
        raise storage_error(exc, f"pin GRID_HOME {home} to this host") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    if holder != host_id:
        raise UnsafeHomeError(
            f"GRID_HOME {home} is on a network filesystem ({kind}) that host {holder!r} "
            "already uses, and SQLite cannot be shared between machines: give this machine "
            "a GRID_HOME on a local disk (e.g. GRID_HOME=/scratch/$USER/grid) or share "
            f"datastores through `grid server` (if {holder!r} no longer uses it, delete {pin})"
        )
