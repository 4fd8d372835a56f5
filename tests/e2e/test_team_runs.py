"""`grid run` and lineage logged in to a real `grid server`: a run attaches the user's own and
their team's datastores, mounted through the server; the server refuses a teammate's delete of
a version a live run attaches, naming the run; runs are their owner's alone."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from tests.team import GRID, new_user

pytestmark = pytest.mark.fuse
if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
    pytest.skip(
        "runs mount in namespaces of their own: root and /dev/fuse", allow_module_level=True
    )

SCRIPT = """
import os, sys, time
for name, folder in sorted(os.environ.items()):
    if name.startswith("GRID_DATASTORE_") and name != "GRID_DATASTORE_ROOT":
        text = open(os.path.join(folder, "a.txt")).read()
        print(name, folder, sorted(os.listdir(folder)), text, flush=True)
while len(sys.argv) > 1 and not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
"""


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GRID, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_run_attaches_own_and_team_datastores_and_holds_them(team_server, tmp_path):
    database, url = team_server
    team = f"t{uuid.uuid4().hex[:8]}"
    alice, alice_key = new_user(database, teams=(team,))
    _, bob_key = new_user(database, teams=(team,))
    base = {**os.environ, "GRID_FSYNC": "0", "GRID_URL": url}
    env_a = {**base, "GRID_HOME": str(tmp_path / "a"), "GRID_API_KEY": alice_key}
    env_b = {**base, "GRID_HOME": str(tmp_path / "b"), "GRID_API_KEY": bob_key}
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("mine")
    assert _cli(env_a, "datastore", "create", str(src), "--name", "pets").returncode == 0
    (src / "a.txt").write_text("ours")
    r = _cli(env_a, "datastore", "create", str(src), "--name", f"{team}/pets")
    assert r.returncode == 0, r.stderr
    script = tmp_path / "show.py"
    script.write_text(SCRIPT)
    flag = tmp_path / "go"

    run = subprocess.Popen(
        [*GRID, "run", "--name", "trainer", "--datastore", "pets",
         "--datastore", f"{team}/pets:1:/datastores/team-pets", str(script), str(flag)],
        env=env_a, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert run.stdout is not None
        lines = [run.stdout.readline(), run.stdout.readline()]
        assert "GRID_DATASTORE_PETS /datastores/pets/1 ['a.txt'] mine" in lines[0], lines
        # the team's datastore under the folder asked for, named by its qualified name
        want = f"GRID_DATASTORE_{team.upper()}_PETS /datastores/team-pets ['a.txt'] ours"
        assert want in lines[1], lines
        refused = _cli(env_b, "datastore", "delete", f"{team}/pets:1", "-y")
        assert refused.returncode == 4
        assert "is in use by run" in refused.stderr and "(trainer)" in refused.stderr
        lineage = json.loads(_cli(env_b, "datastore", "show", f"{team}/pets:1", "--json").stdout)
        (used,) = lineage["used_by"]
        assert (used["name"], used["user"], used["status"]) == ("trainer", alice, "running")
        assert used["command"] == [] and used["log_path"] == ""  # not for a teammate's eyes
        assert json.loads(_cli(env_b, "run", "list", "--json").stdout) == []
        assert _cli(env_b, "run", "show", str(used["id"])).returncode == 3
        flag.touch()
        run.wait(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, run.stderr.read() if run.stderr else ""
    (mine,) = json.loads(_cli(env_a, "run", "list", "--json").stdout)
    assert mine["status"] == "succeeded"
    assert [(d["datastore"], d["version"]) for d in mine["datastores"]] == [
        ("pets", 1),
        (f"{team}/pets", 1),
    ]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _cli(env_b, "datastore", "delete", f"{team}/pets:1", "-y").returncode == 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the version stayed held after the run ended")
