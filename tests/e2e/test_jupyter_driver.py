"""JupyterLab serves a `datastores` symlink that points outside its root, and runs code.

This is what `grid session create` relies on: the notebook folder holds `datastores` ->
/datastores, and the browser lists, reads and runs code against what lies behind it.
"""

from __future__ import annotations

import secrets
import subprocess

import httpx
import pytest

from tests.jupyter_driver import JupyterDriver, free_port, start_jupyter, stop_jupyter

pytest.importorskip("jupyterlab", reason="needs the `session` extra")
pytest.importorskip("websocket", reason="needs websocket-client (the `test` extra)")

pytestmark = pytest.mark.slow


def _leftovers(marker: str) -> str:
    p = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True)
    return p.stdout.strip()


def test_jupyter_lists_reads_and_runs_through_a_symlink_outside_root(tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()
    outside = tmp_path / "outside"  # stands in for /datastores: not under root
    (outside / "cats" / "1").mkdir(parents=True)
    cat = outside / "cats" / "1" / "cat.txt"
    cat.write_text("meow from outside\n")
    (root / "datastores").symlink_to(outside, target_is_directory=True)

    state = tmp_path / "state"
    env = {  # keep the test's Jupyter and IPython files out of ~
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "IPYTHONDIR": str(state / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    token = secrets.token_hex(16)
    port = free_port()
    log = tmp_path / "jupyter.log"
    proc = start_jupyter(root, port, token, env, state_dir=state, log_path=log)
    jd = JupyterDriver(f"http://127.0.0.1:{port}", token)
    try:
        jd.wait_ready(60, proc)

        top = {e["name"]: e["type"] for e in jd.contents("")}
        assert top == {"datastores": "directory"}
        assert {e["name"]: e["type"] for e in jd.contents("datastores")} == {"cats": "directory"}
        assert {e["name"]: e["type"] for e in jd.contents("datastores/cats/1")} == {
            "cat.txt": "file"
        }
        assert jd.read_file("datastores/cats/1/cat.txt") == "meow from outside\n"

        # `..` still cannot leave the root; only the symlink the session made leads out
        r = jd.http.get("/api/contents/..%2Foutside")
        assert r.status_code == 404

        out = jd.execute(f"print(open({str(cat)!r}).read(), end='')\n1 + 1")
        assert out == "meow from outside\n2\n"
        # the kernel starts in root: the relative path works as in a notebook
        out = jd.execute("print(open('datastores/cats/1/cat.txt').read(), end='')")
        assert out == "meow from outside\n"

        with pytest.raises(AssertionError, match=r"ZeroDivisionError"):
            jd.execute("x = 1\n1 / 0")

        for headers in ({"Authorization": "token wrong"}, {}):
            r = httpx.get(f"http://127.0.0.1:{port}/api/contents/datastores", headers=headers)
            assert r.status_code == 403, r.text
        r = httpx.get(f"http://127.0.0.1:{port}/api/contents/datastores?token=wrong")
        assert r.status_code == 403
    except BaseException:
        print(log.read_text(errors="replace") if log.exists() else "(no log)")
        raise
    finally:
        jd.close()
        stop_jupyter(proc)

    assert proc.returncode == 0
    # the server and every kernel it started are gone (their command lines name tmp_path)
    assert _leftovers(str(tmp_path)) == ""
    assert list((state / "runtime").glob("kernel-*.json")) == []
