"""`grid run --executor slurm` on a real one-machine SLURM cluster: the job mounts the run's
datastores on its node, the run gets the script's exit code, scancel and `grid run stop` stop
it, the SLURM options reach the job, and sbatch's refusal is one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.slurm import job_fields, slurm_cluster  # noqa: F401 - the fixture, by name
from tests.team import GRID, new_user

pytestmark = pytest.mark.fuse
if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
    pytest.skip(
        "runs mount in namespaces of their own: root and /dev/fuse", allow_module_level=True
    )

SHOW = """
import json, os, sys, time
folder = os.environ["GRID_DATASTORE_CATS"]
mounts = [l.split()[1] for l in open("/proc/self/mounts") if l.split()[2] == "fuse.grid"]
print(json.dumps({"files": sorted(os.listdir(folder)), "mounts": mounts,
                  "job": os.environ.get("SLURM_JOB_ID")}), flush=True)
if len(sys.argv) > 1:
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(5))
    print("running", flush=True)
    time.sleep(120)
sys.exit(3)
"""


@pytest.fixture
def slurm_cli(cli, slurm_cluster, tmp_path):  # noqa: F811
    src = tmp_path / "cats"
    src.mkdir()
    (src / "a.txt").write_text("one")
    assert cli("datastore", "create", str(src), "--name", "cats").code == 0
    (tmp_path / "show.py").write_text(SHOW)

    def run(*args: str):
        return cli(*args, SLURM_CONF=str(slurm_cluster.conf))

    return run


def _runs(run) -> list[dict]:
    return json.loads(run("run", "list", "--json").out)


def test_a_slurm_run_mounts_on_the_node_and_returns_the_exit_code(slurm_cli, tmp_path):
    r = slurm_cli("run", "--executor", "slurm", "--datastore", "cats", str(tmp_path / "show.py"))
    assert r.code == 3, r.err
    assert "submitted as SLURM job" in r.err
    shown = json.loads(next(line for line in r.out.splitlines() if line.startswith("{")))
    assert shown["files"] == ["a.txt"] and shown["mounts"] == ["/datastores/cats/1"]
    (run,) = _runs(slurm_cli)
    assert (run["executor"], run["status"], run["exit_code"]) == ("slurm", "failed", 3)
    assert run["job_id"] == shown["job"]
    assert not [m for m in Path("/proc/mounts").read_text().splitlines() if "fuse.grid" in m]


def test_detach_stop_and_slurm_options(slurm_cli, slurm_cluster, tmp_path):  # noqa: F811
    r = slurm_cli(
        "run", "--executor", "slurm", "--detach", "--name", "long", "--time", "5",
        "--cpus", "1", "--mem", "100M", "--datastore", "cats",
        str(tmp_path / "show.py"), "wait",
    )  # fmt: skip
    assert r.code == 0, r.err
    run_id = r.out.strip()
    deadline = time.monotonic() + 60
    while "running" not in slurm_cli("run", "logs", run_id).out:
        assert time.monotonic() < deadline, slurm_cli("run", "logs", run_id).out
        time.sleep(0.2)
    (run,) = _runs(slurm_cli)
    assert run["status"] == "running"
    fields = job_fields(slurm_cluster, run["job_id"])
    assert fields["TimeLimit"] == "00:05:00" and fields["MinMemoryNode"] == "100M"
    assert fields["JobName"] == f"grid-run-{run_id}"
    refused = slurm_cli("datastore", "delete", "cats:1", "-y")
    assert refused.code == 4 and f"in use by run {run_id} (long)" in refused.err
    stopped = slurm_cli("run", "stop", "long")
    assert stopped.code == 0 and "stopped" in stopped.out, stopped.err
    (run,) = _runs(slurm_cli)
    assert (run["status"], run["exit_code"]) == ("stopped", 5)  # the script's handler ran
    assert slurm_cli("datastore", "delete", "cats:1", "-y").code == 0


def test_sbatch_refusing_the_job_is_one_line_and_recorded(slurm_cli, tmp_path):
    r = slurm_cli(
        "run", "--executor", "slurm", "--partition", "nope", "--datastore", "cats",
        str(tmp_path / "show.py"),
    )  # fmt: skip
    assert r.code == 4
    assert "sbatch refused run" in r.err and "nope" in r.err
    assert len(r.err.strip().splitlines()) == 1
    (run,) = _runs(slurm_cli)
    assert run["status"] == "failed" and "sbatch" in dict(run["details"])["error"]


def test_a_logged_in_job_reads_with_a_run_key(slurm_cluster, team_server, tmp_path):  # noqa: F811
    """Never with its user's key."""

    database, url = team_server
    user, key = new_user(database)
    env = {
        **os.environ, "GRID_FSYNC": "0", "GRID_HOME": str(tmp_path / "home"), "GRID_URL": url,
        "GRID_API_KEY": key, "SLURM_CONF": str(slurm_cluster.conf),
    }  # fmt: skip
    src = tmp_path / "cats"
    src.mkdir()
    (src / "a.txt").write_text("one")

    def grid(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*GRID, *args], env=env, capture_output=True, text=True, timeout=120)

    assert grid("datastore", "create", str(src), "--name", "cats").returncode == 0
    script = tmp_path / "show.py"
    script.write_text(SHOW.replace('"job":', '"key": os.environ["GRID_API_KEY"], "job":'))
    r = grid("run", "--executor", "slurm", "--time", "10", "--datastore", "cats", str(script))
    assert r.returncode == 3, r.stderr
    shown = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("{")))
    assert shown["files"] == ["a.txt"] and shown["mounts"] == ["/datastores/cats/1"]
    run_key = shown["key"]
    assert run_key.startswith("grid_") and run_key != key  # never the user's own key
    version = f"{url}/v1/datastores/{user}/cats/versions/1"
    auth = {"Authorization": f"Bearer {run_key}"}
    assert httpx.get(version, headers=auth).status_code == 401  # its run ended: worth nothing
    (run,) = json.loads(grid("run", "list", "--json").stdout)
    assert (run["executor"], run["exit_code"]) == ("slurm", 3)
