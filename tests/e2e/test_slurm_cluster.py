"""The local SLURM cluster that `grid run --executor slurm` will use: jobs run, their exit code
comes back, and scancel ends them."""

from __future__ import annotations

import time
from pathlib import Path

from tests.slurm import (
    SlurmCluster,
    job_fields,
    slurm_cluster,  # noqa: F401 - the fixture, by name
    wait_job,
)


def submit(cluster: SlurmCluster, script: str, tmp_path: Path) -> str:
    path = tmp_path / "job.sh"
    path.write_text(script)
    p = cluster.run("sbatch", "--parsable", "--output", str(tmp_path / "job.out"), str(path))
    return p.stdout.strip().split(";")[0]


def test_job_runs_and_its_exit_code_comes_back(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "written.txt"
    job = submit(
        slurm_cluster,
        f'#!/bin/bash\necho "hello from $SLURM_JOB_ID" > {out}\nexit 3\n',
        tmp_path,
    )

    assert wait_job(slurm_cluster, job, timeout=60) == "FAILED"
    assert out.read_text() == f"hello from {job}\n"
    fields = job_fields(slurm_cluster, job)
    assert fields["JobState"] == "FAILED"
    assert fields["ExitCode"] == "3:0"
    # no longer pending or running; squeue still lists it among all states, finished
    running = slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%T")
    assert running.stdout.strip() == ""
    everything = slurm_cluster.run("squeue", "-h", "-j", job, "-t", "all", "-o", "%T")
    assert everything.stdout.strip() == "FAILED"


def test_scancel_ends_a_sleeping_job(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:  # noqa: F811
    job = submit(slurm_cluster, "#!/bin/bash\nsleep 300\n", tmp_path)
    deadline = time.monotonic() + 30
    while job_fields(slurm_cluster, job).get("JobState") != "RUNNING":
        assert time.monotonic() < deadline, job_fields(slurm_cluster, job)
        time.sleep(0.1)

    slurm_cluster.run("scancel", job)

    assert wait_job(slurm_cluster, job, timeout=30) == "CANCELLED"
    assert job_fields(slurm_cluster, job)["ExitCode"] == "0:15"
