"""A real one-machine SLURM cluster in tests (scripts/slurm-local.sh): munged, slurmctld and
slurmd with their own config, key, ports and state in a temporary folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm-local.sh"
# states a job does not leave (squeue/scontrol long names)
FINAL_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}


@dataclass
class SlurmCluster:
    dir: Path
    conf: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A SLURM client command (sbatch, squeue, scontrol, ...) against this cluster."""
        return subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, check=check, timeout=60
        )


def _script(command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), command],
        env={**os.environ, "GRID_SLURM_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster runs slurmd and munged as root")
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch not found: install slurm-wlm and munge (scripts/install.sh)")
    folder = tmp_path_factory.mktemp("slurm")
    started = _script("start", folder)
    if started.returncode != 0:
        _script("stop", folder)
        raise RuntimeError(f"slurm-local.sh start failed:\n{started.stdout}\n{started.stderr}")
    last = started.stdout.strip().splitlines()[-1]
    assert last.startswith("export SLURM_CONF="), started.stdout
    conf = Path(last.removeprefix("export SLURM_CONF="))
    try:
        yield SlurmCluster(folder, conf, {**os.environ, "SLURM_CONF": str(conf)})
    finally:
        stopped = _script("stop", folder)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def job_fields(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """`scontrol show job` as a dict (empty when SLURM no longer knows the job)."""
    p = cluster.run("scontrol", "-o", "show", "job", job_id, check=False)
    if p.returncode != 0:
        return {}
    # -o: one line of Key=Value; values may hold spaces only in the last few keys we don't read
    return dict(re.findall(r"(\w+)=(\S*)", p.stdout))


def wait_job(cluster: SlurmCluster, job_id: str, timeout: float = 60) -> str:
    """Wait for a job to end; its final state (COMPLETED, FAILED, CANCELLED, ...)."""
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        state = job_fields(cluster, job_id).get("JobState", "")
        if not state:
            # the record is gone from scontrol: squeue may still have it while completing
            q = cluster.run("squeue", "-h", "-j", job_id, "-t", "all", "-o", "%T", check=False)
            state = q.stdout.strip()
        if state in FINAL_STATES:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {state or 'unknown'} after {timeout}s")
        time.sleep(0.1)
