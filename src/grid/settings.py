"""Settings from the environment; read by front-ends only, then passed down as values."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from grid.errors import UsageError


@dataclass(frozen=True)
class Settings:
    """Where the embedded installation lives and how it writes.

    GRID_HOME: root of the embedded installation (default ``~/.grid``).
    GRID_FSYNC: ``0`` skips fsync of stored objects (faster, but a power cut may lose the
        newest objects); default ``1``.
    GRID_OWNER: owner name in embedded mode (default ``local``).
    GRID_DEBUG: ``1`` shows tracebacks in the CLI.
    GRID_CACHE_SIZE: bound of the on-disk cache of verified blobs used by mounts and
        ``open`` (``10G``, ``512M``, ``0`` for none); default: none for a local object
        directory (its packs already are local files), 10G for remote storage.
    GRID_STORAGE_URL: where packs and manifests live: ``s3://bucket/prefix`` for any
        S3-compatible store (credentials, region and ``AWS_ENDPOINT_URL`` / ``AWS_PROFILE``
        from the standard AWS chain); default the local directory ``GRID_HOME/objects``.
    GRID_ARCHIVE_MAX_SIZE, GRID_ARCHIVE_MAX_FILES, GRID_ARCHIVE_MAX_RATIO: what an archive
        may expand to before it is refused as a decompression bomb (default 4T, 10000000
        entries, 250 times its compressed size).
    GRID_GC_GRACE: how old an unreferenced object must be before gc deletes it (``24h``
        by default; ``0`` reclaims at once: only when no create runs that gc cannot see).
    GRID_HOST_ID: this machine's name in leases and claims (default: the host name; set it
        where several machines share one host name).
    GRID_LEASE_SECONDS: how long a create holds its version without renewing (default 60):
        once past, its create counts as stopped and the version may be resumed elsewhere.
    GRID_NETWORK_FS: more filesystem types (comma-separated, as /proc/mounts names them) to
        treat as shared between machines, beside nfs, cifs, ceph, lustre, gpfs and the like.
    GRID_DB_POOL_SIZE, GRID_DB_MAX_OVERFLOW: connections to PostgreSQL each server or worker
        process keeps, and may open more at peaks (default 10 and 20): the database must
        allow (processes x (both summed)) connections.
    """

    home: str
    fsync: bool = True
    owner: str = "local"
    debug: bool = False
    cache_size: int | None = None
    storage_url: str | None = None
    archive_max_size: int = 4 << 40
    archive_max_files: int = 10_000_000
    archive_max_ratio: float = 250.0
    gc_grace: float = 24 * 3600.0
    host_id: str = ""
    lease_seconds: float = 60.0
    network_fs: tuple[str, ...] = ()
    db_pool_size: int = 10
    db_max_overflow: int = 20

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = env.get("GRID_HOME") or os.path.join(os.path.expanduser("~"), ".grid")
        return cls(
            home=os.path.abspath(home),
            fsync=env.get("GRID_FSYNC", "1") not in ("0", "false", "no"),
            owner=env.get("GRID_OWNER", "local"),
            debug=env.get("GRID_DEBUG", "0") not in ("0", "", "false", "no"),
            cache_size=parse_size(env["GRID_CACHE_SIZE"]) if env.get("GRID_CACHE_SIZE") else None,
            storage_url=env.get("GRID_STORAGE_URL") or None,
            archive_max_size=parse_size(env.get("GRID_ARCHIVE_MAX_SIZE") or "4T"),
            archive_max_files=parse_count(env.get("GRID_ARCHIVE_MAX_FILES") or "10000000"),
            archive_max_ratio=parse_ratio(env.get("GRID_ARCHIVE_MAX_RATIO") or "250"),
            gc_grace=parse_duration(env.get("GRID_GC_GRACE") or "24h"),
            host_id=env.get("GRID_HOST_ID") or socket.gethostname(),
            lease_seconds=parse_duration(env.get("GRID_LEASE_SECONDS") or "60", minimum=1),
            network_fs=tuple(t for t in (env.get("GRID_NETWORK_FS") or "").split(",") if t),
            db_pool_size=parse_count(env.get("GRID_DB_POOL_SIZE") or "10"),
            db_max_overflow=parse_count(env.get("GRID_DB_MAX_OVERFLOW") or "20", minimum=0),
        )


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from ``123``, ``64K``, ``512M``, ``10G``, ``1T`` (binary units, optional ``iB``/``B``).

    Raises:
        UsageError: not a size.
    """
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    number = t[: len(t) - len(unit)].strip()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UsageError(f"{text!r} is not a size", rule="a size is like 0, 512M or 10G")
    return int(value * _UNITS[unit])


_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, minimum: float = 0) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``24h``, ``7d``.

    Raises:
        UsageError: not a duration, or under ``minimum`` seconds.
    """
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", text.lower())
    value = float(m.group(1)) * _SECONDS[m.group(2)] if m else -1.0
    if value < minimum:
        raise UsageError(
            f"{text!r} is not a duration of at least {minimum:g} s",
            rule="a duration is like 0, 90s, 30m, 24h or 7d",
        )
    return value


def parse_count(text: str, minimum: int = 1) -> int:
    """A whole number of entries (``1000000``, ``1e6``), at least ``minimum``.

    Raises:
        UsageError: not a whole number of at least ``minimum``.
    """
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not minimum <= value < 2**63 or value != int(value):  # also refuses nan and inf
        raise UsageError(f"{text!r} is not a count", rule="a count is a whole number, e.g. 1000000")
    return int(value)


def parse_ratio(text: str) -> float:
    """A compression ratio bound (``250``): expanded bytes per compressed byte.

    Raises:
        UsageError: not a number of at least 1.
    """
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value < 1:
        raise UsageError(f"{text!r} is not a ratio", rule="a ratio is a number of at least 1")
    return value
