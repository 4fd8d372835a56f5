"""`grid run` on this machine: datastores at /datastores/<name>/<version> for that run alone,
exit codes, logs, stop, Ctrl-C, kill -9 of either side, lineage and delete while in use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import GRID

pytestmark = pytest.mark.fuse
if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
    pytest.skip(
        "runs mount datastores in namespaces of their own: root and /dev/fuse",
        allow_module_level=True,
    )

SHOW = """
import json, os, sys
root = os.environ["GRID_DATASTORES_ROOT"]
seen = {}
for name in sorted(os.listdir(root)):
    for version in sorted(os.listdir(os.path.join(root, name))):
        folder = os.path.join(root, name, version)
        if os.path.isdir(folder):
            seen[f"{name}/{version}"] = sorted(os.listdir(folder))
mounts = [l.split()[1] for l in open("/proc/self/mounts") if l.split()[2] == "fuse.grid"]
env = {k: v for k, v in os.environ.items() if k.startswith("GRID_DATASTORE")}
print(json.dumps({"seen": seen, "mounts": mounts, "env": env, "pid": os.getpid(),
                  "args": sys.argv[1:]}), flush=True)
sys.exit(int(os.environ.get("EXIT", "0")))
"""

WAIT_FOR_FLAG = """
import os, sys, time
flag = sys.argv[1]
print("waiting", os.listdir(os.environ["GRID_DATASTORES_ROOT"] + "/cats"), flush=True)
while not os.path.exists(flag):
    time.sleep(0.05)
print("seen", os.listdir(os.environ["GRID_DATASTORES_ROOT"] + "/cats"), flush=True)
"""

LOOP = """
import os, signal, sys, time
def stop(*_):
    print("SIGTERM", flush=True)
    sys.exit(5)
signal.signal(signal.SIGTERM, stop)
print("running", flush=True)
try:
    while True:
        time.sleep(0.05)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(130)
"""


def _host_grid_mounts() -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if line.split()[2] == "fuse.grid"]


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "show.py").write_text(SHOW)
    (folder / "wait.py").write_text(WAIT_FOR_FLAG)
    (folder / "loop.py").write_text(LOOP)
    return folder


@pytest.fixture
def cats(cli, tmp_path: Path) -> Path:
    """cats:1 with a.txt, cats:2 with a.txt and b.txt."""
    src = tmp_path / "cats"
    src.mkdir()
    (src / "a.txt").write_text("one")
    assert cli("datastore", "create", str(src), "--name", "cats").code == 0
    (src / "b.txt").write_text("two")
    assert cli("datastore", "create", str(src), "--name", "cats").code == 0
    return src


def _json_line(out: str) -> dict:
    return json.loads(next(line for line in out.splitlines() if line.startswith("{")))


def _procs_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


def _popen(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0"}
    return subprocess.Popen(
        [*GRID, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_output(proc: subprocess.Popen[str], word: str, timeout: float = 30) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if word in line:
            return
    raise AssertionError(f"no {word!r} from the run")


def _runs(cli) -> list[dict]:
    r = cli("run", "list", "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_a_run_sees_its_pinned_version_alone_and_leaves_nothing_mounted(cli, cats, scripts):
    before = _host_grid_mounts()
    r = cli("run", "--datastore", "cats", str(scripts / "show.py"), "--debug", "x", EXIT="3")
    assert r.code == 3, r.err
    shown = _json_line(r.out)
    assert shown["seen"] == {"cats/2": ["a.txt", "b.txt"]}  # the latest succeeded version
    assert shown["mounts"] == ["/datastores/cats/2"]
    assert shown["env"] == {
        "GRID_DATASTORES_ROOT": "/datastores",
        "GRID_DATASTORE_CATS": "/datastores/cats/2",
    }
    assert shown["args"] == ["--debug", "x"]  # a script's own flags are its own
    assert shown["pid"] < 10  # its own PID namespace
    assert _host_grid_mounts() == before
    (run,) = _runs(cli)
    assert run["status"] == "failed" and run["exit_code"] == 3
    assert run["datastores"][0]["datastore"] == "cats" and run["datastores"][0]["version"] == 2
    assert run["command"][0] == sys.executable
    assert run["started_at"] and run["ended_at"]
    shown_run = cli("run", "show", str(run["id"]))
    assert "cats:2 at /datastores/cats/2" in shown_run.out and "exit code  3" in shown_run.out
    logs = cli("run", "logs", str(run["id"]))
    assert _json_line(logs.out) == shown


def test_versions_and_folders_as_asked_and_grids_own_spellings(cli, cats, scripts, tmp_path):
    folder = tmp_path / "elsewhere" / "cats"
    r = cli(
        "run",
        "--datastore",
        "cats:1",
        "--datastore",
        f"cats:2:{folder}",
        str(scripts / "show.py"),
    )
    assert r.code == 0, r.err
    shown = _json_line(r.out)
    assert shown["seen"] == {"cats/1": ["a.txt"]}
    assert sorted(shown["mounts"]) == sorted(["/datastores/cats/1", str(folder)])
    r = cli(
        "run",
        "--datastore_name",
        "cats",
        "--datastore_version",
        "1",
        "--datastore_mount_dir",
        "/datastores/old",
        str(scripts / "show.py"),
    )
    assert r.code == 0, r.err
    assert _json_line(r.out)["mounts"] == ["/datastores/old"]


def test_two_runs_attach_different_versions_at_once_without_seeing_each_other(
    home, cli, cats, scripts, tmp_path
):
    flag = tmp_path / "go"
    one = _popen(home, "run", "--datastore", "cats:1", str(scripts / "wait.py"), str(flag))
    two = _popen(home, "run", "--datastore", "cats:2", str(scripts / "wait.py"), str(flag))
    try:
        _wait_output(one, "waiting")
        _wait_output(two, "waiting")
        flag.touch()
        out_one, _ = one.communicate(timeout=30)
        out_two, _ = two.communicate(timeout=30)
    finally:
        for p in (one, two):
            p.kill()
    assert "seen ['1']" in out_one
    assert "seen ['2']" in out_two
    assert not [m for m in _host_grid_mounts() if m.startswith("/datastores")]


def test_only_succeeded_versions_attach_and_bad_requests_start_nothing(cli, cats, scripts):
    cases = [
        (("--datastore", "dogs"), 3, "no datastore named 'dogs'"),
        (("--datastore", "cats:9"), 3, "no version 9"),
        (("--datastore", "cats:x"), 2, "'x' is no version"),
        (("--datastore", "cats:1:relative/dir"), 2, "MOUNT_DIR must be absolute"),
        (("--datastore", ":1"), 2, "names no datastore"),
        (("--datastore", "cats:1", "--datastore", "cats:1"), 2, "on or over another"),
        (("--datastore_version", "1"), 2, "need --datastore_name"),
        (("--partition", "debug"), 2, "SLURM options"),
        (("--executor", "kubernetes"), 2, "unknown executor"),
    ]
    for flags, code, words in cases:
        r = cli("run", *flags, str(scripts / "show.py"))
        assert r.code == code, (flags, r.err)
        assert words in r.err, (flags, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
    assert _runs(cli) == []  # nothing was recorded, nothing started


def test_a_failed_version_is_refused_before_anything_starts(cli, home, cats, scripts):
    import grid

    with grid.Client(str(home)) as c:
        c._ctx.catalog.set_status("cats", 2, "failed", reason="test")
    r = cli("run", "--datastore", "cats:2", str(scripts / "show.py"))
    assert r.code == 4 and "cats:2 is failed: only succeeded versions attach" in r.err
    r = cli("run", "--datastore", "cats", str(scripts / "show.py"))
    assert r.code == 0 and _json_line(r.out)["seen"] == {"cats/1": ["a.txt"]}


def test_a_program_that_is_not_python_and_one_that_does_not_exist(cli, cats, tmp_path):
    prog = tmp_path / "list.sh"
    prog.write_text('#!/bin/sh\nls "$GRID_DATASTORE_CATS"\nexit 7\n')
    prog.chmod(0o755)
    r = cli("run", "--datastore", "cats:1", str(prog))
    assert r.code == 7 and r.out.split() == ["a.txt"]
    r = cli("run", str(tmp_path / "missing"))
    assert r.code == 127 and "cannot start" in r.out + r.err


def test_detach_logs_follow_stop_and_delete_while_in_use(cli, cats, scripts):
    r = cli(
        "run", "--detach", "--name", "looper", "--datastore", "cats:1", str(scripts / "loop.py")
    )
    assert r.code == 0, r.err
    run_id = r.out.strip()
    assert run_id.isdigit()
    deadline = time.monotonic() + 20
    while "running" not in cli("run", "logs", run_id).out and time.monotonic() < deadline:
        time.sleep(0.1)
    refused = cli("datastore", "delete", "cats:1", "-y")
    assert refused.code == 4
    assert f"cats:1 is in use by run {run_id} (looper)" in refused.err
    assert f"grid run stop {run_id}" in refused.err
    whole = cli("datastore", "delete", "cats", "-y")
    assert whole.code == 4 and "in use" in whole.err
    lineage = cli("datastore", "show", "cats:1")
    assert "looper" in lineage.out and "running" in lineage.out
    stopped = cli("run", "stop", "looper")
    assert stopped.code == 0 and "stopped" in stopped.out, stopped.err
    (run,) = _runs(cli)
    assert run["status"] == "stopped" and run["exit_code"] == 5  # its SIGTERM handler's code
    assert "SIGTERM" in cli("run", "logs", run_id, "--follow").out
    assert cli("run", "stop", run_id).code == 4  # already ended: said so
    assert cli("datastore", "delete", "cats:1", "-y").code == 0
    assert cli("run", "show", "999").code == 3


def test_ctrl_c_stops_the_script_and_grid_run_exits_with_its_code(home, cli, cats, scripts):
    proc = _popen(home, "run", "--datastore", "cats:1", str(scripts / "loop.py"))
    _wait_output(proc, "running")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "KeyboardInterrupt" in out
    (run,) = _runs(cli)
    assert run["status"] == "stopped"


@pytest.mark.parametrize("victim", ["grid run", "the script"])
def test_kill_9_of_either_side_leaves_no_process_and_no_mount(home, cli, cats, scripts, victim):
    proc = _popen(home, "run", "--datastore", "cats:1", str(scripts / "loop.py"))
    _wait_output(proc, "running")
    marker = str(scripts / "loop.py")
    (script_line,) = [p for p in _procs_with(marker) if "-m grid" not in p]
    target = proc.pid if victim == "grid run" else int(script_line.split()[0])
    os.kill(target, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _procs_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _procs_with(marker) == []
    assert not [m for m in _host_grid_mounts() if m.startswith("/datastores")]
    (run,) = _runs(cli)
    if victim == "grid run":
        assert run["status"] == "lost"  # nobody was left to record the end
    else:
        assert (run["status"], run["exit_code"], proc.returncode) == ("failed", 137, 137)
    assert cli("datastore", "delete", "cats:1", "-y").code == 0  # nothing holds it any more


def test_env_names_for_names_with_other_characters(cli, tmp_path, scripts):
    src = tmp_path / "d"
    src.mkdir()
    (src / "f").write_text("x")
    assert cli("datastore", "create", str(src), "--name", "my-data.v2").code == 0
    r = cli("run", "--datastore", "my-data.v2", str(scripts / "show.py"))
    assert r.code == 0, r.err
    assert _json_line(r.out)["env"]["GRID_DATASTORE_MY_DATA_V2"] == "/datastores/my-data.v2/1"


def test_without_namespaces_mounts_live_under_the_run_folder_and_die_with_it(
    home, cli, cats, scripts
):
    """Where a root without CAP_SYS_ADMIN (a container), or a user, runs: the mounts are in
    the host's namespace under the run's folder, and still go when the run is killed."""
    env = {"GRID_RUN_NAMESPACES": "0"}
    r = cli("run", "--datastore", "cats:1", str(scripts / "show.py"), **env)
    assert r.code == 0, r.err
    shown = _json_line(r.out)
    root = shown["env"]["GRID_DATASTORES_ROOT"]
    assert root.startswith(str(home / "runs")) and root.endswith("/datastores")
    assert shown["seen"] == {"cats/1": ["a.txt"]}
    assert not [m for m in _host_grid_mounts() if m.startswith(str(home))]
    proc = subprocess.Popen(
        [*GRID, "run", "--datastore", "cats:1", str(scripts / "loop.py")],
        env={**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_output(proc, "running")
    assert [m for m in _host_grid_mounts() if m.startswith(str(home))]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        _procs_with(str(scripts / "loop.py"))
        or [m for m in _host_grid_mounts() if m.startswith(str(home))]
    ):
        time.sleep(0.05)
    assert _procs_with(str(scripts / "loop.py")) == []
    assert [m for m in _host_grid_mounts() if m.startswith(str(home))] == []


def test_a_run_holds_none_of_the_hosts_mounts(home, cli, cats, scripts, tmp_path):
    """A host mount made before the run is not in the run (and the run does not keep it
    alive: unmounted on the host while the run goes on, its process ends)."""
    mnt = tmp_path / "host-mount"
    assert cli("datastore", "mount", "cats:1", str(mnt)).code == 0
    try:
        r = cli("run", "--datastore", "cats:2", str(scripts / "show.py"))
        assert r.code == 0, r.err
        assert _json_line(r.out)["mounts"] == ["/datastores/cats/2"]
        proc = _popen(home, "run", "--datastore", "cats:2", str(scripts / "loop.py"))
        _wait_output(proc, "running")
        assert cli("datastore", "unmount", str(mnt)).code == 0
        deadline = time.monotonic() + 10
        while _procs_with(f"mount cats:1 {mnt}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _procs_with(f"mount cats:1 {mnt}") == []  # not held by the running run
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
