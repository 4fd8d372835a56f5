"""Run the `grid` CLI as a user would: a subprocess with its own GRID_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

GRID = [sys.executable, "-m", "grid"]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(home):
    def run(
        *args: str, obey_permissions: bool = False, stdin: str | None = None, **env: str
    ) -> Result:
        full_env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0", **env}
        prefix: list[str] = []
        if obey_permissions and os.geteuid() == 0:
            # root reads anything; without these capabilities it obeys file modes like a user
            prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
        p = subprocess.run(
            [*prefix, *GRID, *args],
            capture_output=True,
            text=True,
            env=full_env,
            input=stdin,
            timeout=300,
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return run


@pytest.fixture(scope="session")
def browser():
    """A headless chromium shared by the session's web tests (skipped without chromium)."""
    from tests.web import chromium_or_skip, launch

    yield from launch(chromium_or_skip())
