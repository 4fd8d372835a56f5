"""schedule / schedules / unschedule install the seed's crontab recipe, and the installed line
really creates a version and logs where the user can find it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import grid

pytestmark = pytest.mark.skipif(shutil.which("crontab") is None, reason="cron not installed")


@pytest.fixture(autouse=True)
def own_crontab():
    """Keep whatever crontab the machine had and put it back afterwards."""
    before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    yield
    if before.returncode == 0:
        subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
    else:
        subprocess.run(["crontab", "-r"], capture_output=True)


def _crontab() -> str:
    return subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout


def test_schedule_installs_a_working_entry(cli, home, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "a.txt").write_text("a")
    subprocess.run(["crontab", "-"], input="# someone else's line\n", text=True, check=True)
    r = cli(
        "datastore", "schedule", str(src), "--name", "hourly", "--every", "1h", "--keep-last", "3"
    )
    assert r.code == 0, r.err
    table = _crontab()
    assert "# someone else's line" in table  # other entries are kept
    (line,) = [x for x in table.splitlines() if "grid-schedule:hourly" in x]
    assert line.startswith("0 * * * * ")
    listed = json.loads(cli("datastore", "schedules", "--json").out)
    assert [s["name"] for s in listed] == ["hourly"]
    command = listed[0]["command"]
    for _ in range(2):  # what cron would run
        subprocess.run(["sh", "-c", command], check=True)
    with grid.Client(str(home)) as c:
        assert [v.number for v in c.versions("hourly")] == [1, 2]
    assert "created hourly:2" in Path(listed[0]["log"]).read_text()
    r = cli("datastore", "schedule", str(src), "--name", "hourly", "--every", "15m")
    assert r.code == 0
    (line,) = [x for x in _crontab().splitlines() if "grid-schedule:hourly" in x]
    assert line.startswith("*/15 * * * * ")  # replaced, not added
    assert cli("datastore", "unschedule", "hourly").code == 0
    assert "grid-schedule" not in _crontab() and "someone else" in _crontab()


def test_schedule_bad_input(cli, tmp_path):
    for args, needle in (
        (["schedule", str(tmp_path), "--name", "x", "--every", "7m"], "cannot run every 7m"),
        (["schedule", str(tmp_path), "--name", "x", "--every", "soon"], "not an interval"),
        (["schedule", str(tmp_path / "nope"), "--name", "x"], "does not exist"),
        (["schedule", str(tmp_path), "--name", "bad name"], "name"),
        (["unschedule", "nothing"], "no schedule"),
    ):
        r = cli("datastore", *args)
        assert r.code != 0 and needle in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) == 1
    assert "grid-schedule" not in _crontab()
