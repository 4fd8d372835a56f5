"""Settings from the environment; read by front-ends only, then passed down as values."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Where the embedded installation lives and how it writes.

    GRID_HOME: root of the embedded installation (default ``~/.grid``).
    GRID_FSYNC: ``0`` skips fsync of stored objects (faster, but a power cut may lose the
        newest objects); default ``1``.
    GRID_OWNER: owner name in embedded mode (default ``local``).
    GRID_DEBUG: ``1`` shows tracebacks in the CLI.
    """

    home: str
    fsync: bool = True
    owner: str = "local"
    debug: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = env.get("GRID_HOME") or os.path.join(os.path.expanduser("~"), ".grid")
        return cls(
            home=os.path.abspath(home),
            fsync=env.get("GRID_FSYNC", "1") not in ("0", "false", "no"),
            owner=env.get("GRID_OWNER", "local"),
            debug=env.get("GRID_DEBUG", "0") not in ("0", "", "false", "no"),
        )
