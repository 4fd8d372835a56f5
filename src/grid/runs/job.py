"""A run's batch job on a SLURM compute node: ``python -m grid.runs.job PLAN.json``.

It does on the node what the local supervisor does on this machine, without a catalog: fork
the run (its datastores mounted for it alone), pass scancel's SIGTERM on, and leave two
files in the run's folder for the submitting side: ``started`` once the script runs, and
``exit_code`` when it ended.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from dataclasses import asdict

from grid.records import Attachment
from grid.runs.init import InitPlan, exit_code
from grid.runs.local import Reports, fork_run

# What SLURM tells a job about itself and its devices; the script sees the node's values.
_FROM_NODE = ("SLURM_", "SLURMD_", "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE")
STARTED = "started"
EXIT_CODE = "exit_code"


def save_plan(plan: InitPlan, path: str) -> None:
    """Write ``plan`` where the job reads it (0600: it may hold the run's key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(plan), f)


def load_plan(path: str) -> InitPlan:
    with open(path) as f:
        data = json.load(f)
    data["uses"] = tuple(Attachment(**u) for u in data["uses"])
    data["command"] = tuple(data["command"])
    return InitPlan(**data)


def _write(path: str, text: str) -> None:
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def main(plan_path: str) -> int:
    plan = load_plan(plan_path)
    env = {**plan.env, **{k: v for k, v in os.environ.items() if k.startswith(_FROM_NODE)}}
    plan = dataclasses.replace(plan, env=env, passes_signals=False)
    for name in ("GRID_URL", "GRID_API_KEY"):  # the mounts read with the run's key
        if name in plan.env:
            os.environ[name] = plan.env[name]
    report_r, report_w = os.pipe()
    outside = fork_run(plan, report_w)
    os.close(report_w)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # scancel signals the script itself
    reports = Reports(report_r)
    while True:
        for word, rest in reports.read(0.5):
            if word == "started":
                _write(os.path.join(plan.run_dir, STARTED), rest)
            elif word == "error":
                print(f"grid: the run could not start: {rest}", file=sys.stderr, flush=True)
        if reports.closed:
            time.sleep(0.1)  # every writer is gone; the run's outside process is ending
        pid, status = os.waitpid(outside, os.WNOHANG)
        if pid:
            break
    code = exit_code(status)
    _write(os.path.join(plan.run_dir, EXIT_CODE), str(code))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
