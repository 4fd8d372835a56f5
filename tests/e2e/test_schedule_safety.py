"""schedule is honest and its crontab line is what cron will really run: it warns when no cron
daemon runs, escapes cron's ``%``, refuses paths that would split the crontab line, and
unscheduling what is not there is "not found"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

import grid
from tests.e2e.conftest import GRID
from tests.e2e.test_schedule import _crontab, own_crontab  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(shutil.which("crontab") is None, reason="cron not installed")

_NEW_PID_NS = ["unshare", "--pid", "--fork", "--mount-proc", "--"]


def _as_cron_runs(line: str) -> tuple[str, str | None]:
    """The command and stdin cron (vixie/Debian do_command.c) makes of a crontab line: an
    unescaped % ends the command (the rest is stdin, % as newlines), a backslash before a % is
    dropped, any other backslash is kept along with the character after it."""
    command = line.split(None, 5)[5]
    out: list[str] = []
    escaped = False
    for i, ch in enumerate(command):
        if escaped:
            if ch == "%":
                out[-1] = "%"
            else:
                out.append(ch)
            escaped = False
            continue
        out.append(ch)
        if ch == "\\":
            escaped = True
        elif ch == "%":
            out.pop()
            return "".join(out), command[i + 1 :].replace("%", "\n")
    return "".join(out), None


def test_the_cron_emulation_follows_cron():
    assert _as_cron_runs("* * * * * echo a\\%b") == ("echo a%b", None)
    assert _as_cron_runs("* * * * * echo a%b%c") == ("echo a", "b\nc")
    assert _as_cron_runs("* * * * * echo a\\\\%b") == ("echo a\\\\", "b")
    assert _as_cron_runs("* * * * * echo 'a\\b'") == ("echo 'a\\b'", None)


def test_a_percent_in_the_paths_round_trips_through_cron(cli, tmp_path):
    src = tmp_path / "50% off" / "data%20%d"
    src.mkdir(parents=True)
    (src / "a.txt").write_text("a")
    home = tmp_path / "home%H%M"
    r = cli("datastore", "schedule", str(src), "--name", "pct", GRID_HOME=str(home))
    assert r.code == 0, r.err
    (line,) = [x for x in _crontab().splitlines() if x.endswith("# grid-schedule:pct")]
    assert "%" in line and "\\%" in line
    assert line.count("%") == line.count("\\%")  # every % escaped for cron
    command, stdin = _as_cron_runs(line)
    assert stdin is None
    subprocess.run(["sh", "-c", command], check=True, stdin=subprocess.DEVNULL)
    with grid.Client(str(home)) as c:
        (v,) = c.versions("pct")
        assert v.status == "succeeded" and c.read_bytes("pct", 1, "a.txt") == b"a"
    assert "created pct:1" in (home / "logs" / "schedule-pct.log").read_text()
    # `schedules` shows the command as cron runs it
    (entry,) = json.loads(cli("datastore", "schedules", "--json", GRID_HOME=str(home)).out)
    assert entry["command"] == command.rsplit(" # grid-schedule:", 1)[0].strip()
    assert entry["log"] == str(home / "logs" / "schedule-pct.log")


@pytest.mark.parametrize(
    "name", ["evil\n* * * * * touch pwned", "cr\rx", "esc\x1b[2Jx"], ids=["newline", "cr", "esc"]
)
def test_a_path_that_would_split_the_crontab_line_is_refused(cli, tmp_path, name):
    src = tmp_path / name
    src.mkdir()
    (src / "a").write_text("a")
    subprocess.run(["crontab", "-"], input="# someone else's line\n", text=True, check=True)
    r = cli("datastore", "schedule", str(src), "--name", "x")
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and lines[0].startswith("grid: error: "), r.err
    assert "control character" in lines[0]
    assert _crontab() == "# someone else's line\n"


def test_a_backslash_before_a_percent_is_refused(cli, tmp_path):
    src = tmp_path / "a\\%b"
    src.mkdir()
    (src / "a").write_text("a")
    r = cli("datastore", "schedule", str(src), "--name", "x")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "grid-schedule" not in _crontab()


def test_unscheduling_what_is_not_there_is_not_found(cli):
    r = cli("datastore", "unschedule", "nope")
    lines = r.err.strip().splitlines()
    assert r.code == 3 and len(lines) == 1 and "no schedule for 'nope'" in lines[0], r.err


def _pid_namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run([*_NEW_PID_NS, "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _pid_namespaces_work(), reason="needs root and unshare")
def test_schedule_warns_when_no_cron_daemon_runs(home, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "a").write_text("a")
    env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0"}
    # in a fresh PID namespace no cron runs, whatever this machine runs
    args = [*GRID, "datastore", "schedule", str(src), "--name", "lonely"]
    p = subprocess.run([*_NEW_PID_NS, *args], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("scheduled lonely: 0 * * * *")
    (warning,) = p.stderr.strip().splitlines()
    assert warning.startswith("grid: warning: no cron daemon is running")
    assert "will not fire" in warning and "service cron start" in warning
    assert "grid-schedule:lonely" in _crontab()
    # with a process named cron in that namespace, no warning
    fake_cron = tmp_path / "cron"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake_cron)
    script = f'"{fake_cron}" 60 & sleep 0.2; "$@"; status=$?; kill $!; exit $status'
    p = subprocess.run(
        [*_NEW_PID_NS, "sh", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0 and p.stderr == "", p.stderr
