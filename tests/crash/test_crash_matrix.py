"""The crash matrix (``tests.crash.matrix``): a bounded part on every run (two trials per
scenario, seeds spread over stops and moments), regression seeds of bugs it found, and the
full matrix (GRID_CRASH_TRIALS trials per scenario, ``slow``) when that variable is set:

    GRID_CRASH_TRIALS=50 .venv/bin/pytest -q -m slow tests/crash
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.archive_server import ArchiveServer
from tests.crash.matrix import SCENARIOS, Violation, run_trial
from tests.crash.rig import NoTmpfs, Rig, make_rig

FULL_TRIALS = int(os.environ.get("GRID_CRASH_TRIALS", "0") or 0)
# two trials per scenario, seeds spread so that every stop and both moment kinds are met
BOUNDED = [(s, seed) for i, s in enumerate(SCENARIOS) for seed in (2 * i, 2 * i + 1)]
REGRESSIONS = [  # (scenario, seed) of bugs the matrix found
    ("gc-repack", 23),  # gc on a full disk: its scratch table's error was an internal one
    ("keep-last", 35),  # a full disk as the failed create let go of its leases: raw sqlite3
]


@pytest.fixture(scope="module")
def rig(tmp_path_factory, s3_endpoint):
    import boto3

    bucket = f"crash-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    with ArchiveServer() as server:
        yield make_rig(tmp_path_factory.mktemp("crash"), server, s3_endpoint, bucket)


def _trial(scenario: str, seed: int, rig: Rig):
    try:
        return run_trial(scenario, seed, rig)
    except NoTmpfs as exc:
        pytest.skip(f"no tmpfs for a full disk here: {exc}")


@pytest.mark.parametrize(("scenario", "seed"), BOUNDED)
def test_a_stopped_command_leaves_nothing_half_made_and_finishes_when_run_again(
    scenario, seed, rig
):
    trial = _trial(scenario, seed, rig)
    assert any("rerun finished" in c or "delete again" in c for c in trial.checked)
    assert "a second gc reclaims nothing" in trial.checked


@pytest.mark.parametrize(("scenario", "seed"), REGRESSIONS)
def test_regression(scenario, seed, rig):
    _trial(scenario, seed, rig)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@pytest.mark.skipif(not FULL_TRIALS, reason="set GRID_CRASH_TRIALS=N for the full matrix")
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_full_matrix(scenario, rig):
    failures: list[str] = []
    started = time.monotonic()
    for seed in range(FULL_TRIALS):
        try:
            _trial(scenario, seed, rig)
        except Violation as exc:
            failures.append(str(exc))
    seconds = time.monotonic() - started
    print(f"\n{scenario}: {FULL_TRIALS} trials, {len(failures)} failures, {seconds:.0f} s")
    assert not failures, "\n".join(failures)
