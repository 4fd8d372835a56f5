"""`grid session` driven as a browser drives JupyterLab: the contents API lists the session's
datastores through its `datastores` link, a kernel reads them and runs `grid` inside, and a
datastore attached or detached while a kernel runs appears or goes without a restart."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.jupyter_driver import JupyterDriver

pytestmark = [pytest.mark.fuse, pytest.mark.slow]
if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
    pytest.skip(
        "sessions mount in namespaces of their own: root and /dev/fuse", allow_module_level=True
    )
pytest.importorskip("jupyterlab")


def _lab_pids(port: int) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if f"--port={port}" in line]


def test_a_session_shows_its_datastores_to_the_browser_and_kernels(cli, tmp_path):
    for name, text in (("cats", "meow"), ("dogs", "woof")):
        src = tmp_path / name
        src.mkdir()
        (src / "a.txt").write_text(text)
        assert cli("datastore", "create", str(src), "--name", name).code == 0
    r = cli("session", "create", "nb", "--datastore", "cats", "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["name"] == "nb" and info["root"] == "/datastores"
    base = info["url"].split("/lab")[0]
    lab = JupyterDriver(base, info["token"])
    port = int(base.rsplit(":", 1)[1])
    try:
        lab.wait_ready(60)
        assert JupyterDriver(base, "wrong").http.get("/api/status").status_code == 403
        assert [e["name"] for e in lab.contents("datastores/cats/1")] == ["a.txt"]
        assert lab.read_file("datastores/cats/1/a.txt") == "meow"
        kernel = lab.start_kernel()
        out = lab.execute_in(
            kernel,
            "import os, subprocess, sys\n"
            "kept = open('/datastores/cats/1/a.txt').read()\n"
            "print(kept, os.environ['GRID_DATASTORE_CATS'])\n"
            "print(subprocess.run([sys.executable, '-m', 'grid', 'datastore', 'list'],"
            " capture_output=True, text=True).stdout)",
        )
        assert "meow /datastores/cats/1" in out and "dogs" in out  # grid inside sees GRID_HOME
        lab_before = _lab_pids(port)

        attached = cli("session", "attach", "nb", "--datastore", "dogs")
        assert attached.code == 0 and "attached dogs:1 at /datastores/dogs/1" in attached.out
        assert sorted(e["name"] for e in lab.contents("datastores")) == ["cats", "dogs"]
        out = lab.execute_in(kernel, "print(kept, open('/datastores/dogs/1/a.txt').read())")
        assert "meow woof" in out  # the same kernel, its variable still there
        assert _lab_pids(port) == lab_before
        assert cli("session", "attach", "nb", "--datastore", "dogs").code == 4  # already there

        detached = cli("session", "detach", "nb", "--datastore", "dogs")
        assert detached.code == 0, detached.err
        out = lab.execute_in(kernel, "print(os.path.exists('/datastores/dogs/1'), kept)")
        assert "False meow" in out
        listed = json.loads(cli("session", "list", "--json").out)
        assert [(s["name"], s["status"]) for s in listed] == [("nb", "running")]
        shown = json.loads(cli("datastore", "show", "dogs:1", "--json").out)
        assert [u["name"] for u in shown["used_by"]] == ["nb"]  # lineage keeps the detached use
        assert cli("datastore", "delete", "dogs:1", "-y").code == 0  # no longer held
        assert cli("datastore", "delete", "cats:1", "-y").code == 4  # still held
    finally:
        lab.close()
        stopped = cli("session", "stop", "nb")
    assert stopped.code == 0 and "stopped" in stopped.out, stopped.err
    deadline = time.monotonic() + 10
    while _lab_pids(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _lab_pids(port) == []
    assert (tmp_path / "grid-home" / "sessions" / "nb" / "datastores").is_symlink()
    assert cli("session", "stop", "nb").code == 4  # already ended
