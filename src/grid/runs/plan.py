"""What a run attaches and where: ``--datastore NAME[:VERSION][:MOUNT_DIR]`` read, versions
pinned, mount folders and the environment the script sees."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from grid.client import DatastoreClient
from grid.errors import UsageError
from grid.records import Attachment

SPEC_RULE = "--datastore NAME[:VERSION][:MOUNT_DIR], MOUNT_DIR an absolute path"
ROOT = "/datastores"


@dataclass(frozen=True)
class Wanted:
    """A datastore as asked for: version None is the latest succeeded one."""

    name: str
    version: int | None
    mount_dir: str | None


def parse_spec(spec: str) -> Wanted:
    """``NAME[:VERSION][:MOUNT_DIR]`` (``NAME::MOUNT_DIR`` and ``NAME:MOUNT_DIR`` leave the
    version to be pinned).

    Raises:
        UsageError: an empty name, a version that is not a number, a relative MOUNT_DIR.
    """
    name, _, rest = spec.partition(":")
    version_text, mount_dir = rest, None
    if rest.startswith("/") or rest.startswith(":"):
        version_text, mount_dir = "", rest.lstrip(":") or None
    elif ":" in rest:
        version_text, _, mount_dir = rest.partition(":")
    if not name.strip():
        raise UsageError(f"--datastore {spec!r} names no datastore", rule=SPEC_RULE)
    version = None
    if version_text:
        if not (version_text.isascii() and version_text.isdigit()) or int(version_text) < 1:
            raise UsageError(
                f"--datastore {spec!r}: {version_text!r} is no version", rule=SPEC_RULE
            )
        version = int(version_text)
    if mount_dir is not None and (not os.path.isabs(mount_dir) or "\0" in mount_dir):
        raise UsageError(f"--datastore {spec!r}: MOUNT_DIR must be absolute", rule=SPEC_RULE)
    return Wanted(name, version, os.path.normpath(mount_dir) if mount_dir else None)


def pin_all(client: DatastoreClient, wanted: list[Wanted], root: str) -> list[Attachment]:
    """Each wanted datastore at the version it will be attached (the latest succeeded one
    when none is named), mounted under ``root`` unless given a folder.

    Raises:
        VersionNotReadyError, VersionNotFoundError, DatastoreNotFoundError: before anything
            starts.
        UsageError: two datastores on one folder.
    """
    out: list[Attachment] = []
    for w in wanted:
        v = client.pin(w.name, w.version)
        path = w.mount_dir or os.path.join(root, v.datastore, str(v.number))
        out.append(Attachment(v.datastore, v.number, path))
    paths = [a.path for a in out]
    for a in out:
        if (
            any(p != a.path and p.startswith(a.path + "/") for p in paths)
            or paths.count(a.path) > 1
        ):
            raise UsageError(f"{a.ref} would be mounted on or over another datastore at {a.path}")
    return out


def env_name(datastore: str) -> str:
    """``GRID_DATASTORE_<NAME>``: the name upper-cased, other characters as ``_``."""
    return "GRID_DATASTORE_" + re.sub(r"[^A-Za-z0-9]", "_", datastore).upper()


def run_env(base: dict[str, str], run_id: int, root: str, uses: list[Attachment]) -> dict[str, str]:
    """The environment of a run: ``base`` plus where its datastores are."""
    env = dict(base)
    env["GRID_RUN_ID"] = str(run_id)
    env["GRID_DATASTORES_ROOT"] = root
    for a in uses:
        env[env_name(a.datastore)] = a.path
    return env


def command_of(script: str, args: list[str]) -> list[str]:
    """A ``.py`` script runs with this Python; anything else is executed as it is."""
    if script.endswith(".py"):
        return [sys.executable, script, *args]
    return [script, *args]
