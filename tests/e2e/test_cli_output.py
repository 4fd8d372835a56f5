"""What the CLI prints is safe and whole: stored names never act as Rich markup or terminal
escapes, one long name cannot squash a table, bad version numbers and failed writes to stdout
are one clear line, interruptions say what state they leave, and a read-only GRID_HOME is named
as such."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
import tty

import pytest

from tests.e2e.conftest import GRID

# Every character the terminal would act on; only SGR colour codes may reach a terminal.
_RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_SGR = re.compile("\x1b\\[[0-9;]*m")

HOSTILE = {
    "[bold]x": "[bold]x",
    "[red]r": "[red]r",
    ":smile:x": ":smile:x",
    "a\x1b]0;pwned\x07b": "$'a\\e]0;pwned\\ab'",
    "nl\nx": "$'nl\\nx'",
    "tab\tx": "$'tab\\tx'",
    "cr\rx": "$'cr\\rx'",
    "del\x7fx": "$'del\\x7fx'",
    "csi\u009b2Jx": "$'csi\\u009b2Jx'",
    "rlo\u202eexe.txt": "$'rlo\\u202eexe.txt'",
}


def one_line_error(r) -> str:
    lines = r.err.strip().splitlines()
    assert r.code != 0
    assert len(lines) == 1, r.err
    assert "Traceback" not in r.err and "bug in grid" not in r.err, r.err
    assert lines[0].startswith("grid: error: ")
    return lines[0]


def _env(home, **extra: str) -> dict[str, str]:
    return {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0", **extra}


@pytest.fixture
def hostile(cli, tmp_path):
    """Datastore ``h`` whose files are named to inject markup and terminal escapes."""
    src = tmp_path / "h"
    src.mkdir()
    for name in HOSTILE:
        (src / name).write_text(name)
    os.symlink("[bold]t\x1b[2Jq", src / "ln")
    r = cli("datastore", "create", str(src))
    assert r.code == 0, r.err
    return src


def test_ls_shows_names_literally_and_escapes_control_characters(cli, hostile):
    r = cli("datastore", "ls", "h:1")
    assert r.code == 0, r.err
    assert not _RAW_CONTROL.search(r.out), repr(r.out)
    for shown in HOSTILE.values():
        assert shown in r.out
    assert "ln -> $'[bold]t\\e[2Jq'" in r.out
    # one line per entry: no name breaks a row
    assert len(r.out.splitlines()) == 1 + len(HOSTILE) + 1
    # scripts get the exact names
    listed = json.loads(cli("datastore", "ls", "h:1", "--json").out)
    assert {e["path"] for e in listed} == {*HOSTILE, "ln"}
    assert {e["target"] for e in listed if e["path"] == "ln"} == {"[bold]t\x1b[2Jq"}


def test_diff_escapes_names(cli, hostile):
    (hostile / "new\x1b[2J[bold]").write_text("n")
    assert cli("datastore", "create", str(hostile)).code == 0
    r = cli("datastore", "diff", "h:1", "h:2")
    assert r.code == 0, r.err
    assert "+ $'new\\e[2J[bold]'" in r.out
    assert not _RAW_CONTROL.search(r.out)
    exact = json.loads(cli("datastore", "diff", "h:1", "h:2", "--json").out)
    assert [c["path"] for c in exact["added"]] == ["new\x1b[2J[bold]"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_failure_reason_naming_a_hostile_file_is_escaped(cli, tmp_path):
    src = tmp_path / "d"
    src.mkdir()
    bad = src / "x\x1b]0;t\x07[bold]y"
    bad.write_text("secret")
    bad.chmod(0)
    r = cli("datastore", "create", str(src), obey_permissions=True)
    assert r.code == 5 and not _RAW_CONTROL.search(r.err), repr(r.err)
    one_line_error(r)
    shown = cli("datastore", "show", "d")
    assert shown.code == 0 and "failed" in shown.out
    assert not _RAW_CONTROL.search(shown.out), repr(shown.out)
    assert "x\\e]0;t\\a[bold]y" in shown.out


def _on_a_terminal(home, args: list[str], columns: int = 80) -> str:
    """Run the CLI with stdout on a pseudo-terminal ``columns`` wide; return what it shows."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no \n -> \r\n: what comes back is what grid wrote
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = _env(home, TERM="xterm-256color", COLUMNS=str(columns))
    env.pop("NO_COLOR", None)
    p = subprocess.Popen([*GRID, *args], stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError as exc:  # EIO: the other side closed
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(timeout=60) == 0, p.stderr.read() if p.stderr else ""
    if p.stderr:
        p.stderr.close()
    return out.decode()


def test_a_255_byte_name_squashes_no_other_column(cli, home, tmp_path):
    src = tmp_path / "long"
    src.mkdir()
    long_name = "L" * 250 + ".bin"  # 254 bytes
    (src / long_name).write_bytes(b"x" * 7)
    (src / "small.bin").write_bytes(b"y" * 1_234_567)
    assert cli("datastore", "create", str(src)).code == 0
    piped = cli("datastore", "ls", "long:1").out
    assert "…" not in piped
    rows = {line.split()[-1]: line.split() for line in piped.splitlines()[1:]}
    assert rows["small.bin"][:2] == ["-rw-r--r--", "1,234,567"]
    assert rows[long_name][:2] == ["-rw-r--r--", "7"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", rows["small.bin"][2])
    # on an 80-column terminal the long name folds; every other column stays whole
    shown = _SGR.sub("", _on_a_terminal(home, ["datastore", "ls", "long:1"]))
    assert "\x1b" not in shown and "…" not in shown
    assert "1,234,567" in shown and "-rw-r--r--" in shown
    assert shown.count("L") == 250
    assert all(len(line) <= 80 for line in shown.splitlines())


def test_hostile_names_on_a_terminal(cli, home, hostile):
    shown = _on_a_terminal(home, ["datastore", "ls", "h:1"], columns=200)
    plain = _SGR.sub("", shown)
    assert not _RAW_CONTROL.search(plain.replace("\r\n", "\n")), repr(shown)
    for escaped in HOSTILE.values():
        assert escaped in plain


# -- B: version numbers and stdout ----------------------------------------------------------


@pytest.fixture
def kept(cli, tmp_path):
    src = tmp_path / "kept"
    src.mkdir()
    (src / "f.txt").write_text("keep me")
    assert cli("datastore", "create", str(src)).code == 0
    return src


@pytest.mark.parametrize(
    "args",
    [
        ["show", "kept:99999999999999999999999"],
        ["ls", "kept:9223372036854775808"],
        ["cat", "kept:99999999999999999999999", "f.txt"],
        ["verify", "kept:99999999999999999999999"],
        ["delete", "kept:99999999999999999999999", "--yes"],
        ["diff", "kept:1", "kept:99999999999999999999999"],
        ["show", "kept:" + "9" * 5000],
    ],
)
def test_a_version_number_too_big_is_a_usage_error(cli, kept, args):
    r = cli("datastore", *args)
    line = one_line_error(r)
    assert r.code == 2 and "versions are integers" in line


def test_the_largest_version_number_is_merely_not_found(cli, kept):
    r = cli("datastore", "show", f"kept:{2**63 - 1}")
    assert r.code == 3 and "has no version" in one_line_error(r)


@pytest.mark.parametrize("digits", ["١", "۱", "१", "１", "¹", "1١"])
def test_a_version_in_non_ascii_digits_is_refused(cli, kept, digits):
    r = cli("datastore", "cat", f"kept:{digits}", "f.txt")
    line = one_line_error(r)
    assert r.code == 2 and "versions are integers" in line and r.out == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize(
    "args",
    [["cat", "kept:1", "f.txt"], ["ls", "kept:1"], ["show", "kept", "--json"], []],
    ids=["cat", "ls", "show-json", "list"],
)
def test_a_full_stdout_is_one_line(home, kept, args):
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            [*GRID, "datastore", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(home),
            timeout=120,
        )
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 7, p.stderr
    assert lines == ["grid: error: cannot write to standard output: No space left on device"]


@pytest.mark.parametrize("args", [["cat", "kept:1", "f.txt"], ["ls", "kept:1"]])
def test_a_reader_that_left_ends_grid_quietly(home, kept, args):
    p = subprocess.Popen(
        [*GRID, "datastore", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(home)
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # as `| head` does once it has enough
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141, err
    assert err == ""


# -- C: interruptions and --debug -----------------------------------------------------------


def _big_version(cli, tmp_path, files: int = 100):
    src = tmp_path / "big"
    src.mkdir()
    for i in range(files):
        (src / f"{i:03d}.bin").write_bytes(os.urandom(1 << 20))
    assert cli("datastore", "create", str(src)).code == 0
    return src


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_download_says_how_to_resume(cli, home, tmp_path, sig):
    src = _big_version(cli, tmp_path)
    dest = tmp_path / "dest"
    p = subprocess.Popen(
        [*GRID, "datastore", "download", "big:1", str(dest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(home, GRID_FSYNC="1"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if dest.is_dir() and len(os.listdir(dest)) >= 2:
            break
        time.sleep(0.005)
    p.send_signal(sig)
    _out, err = p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip("the download finished before the signal arrived")
    assert p.returncode == 130
    assert err.strip().splitlines() == [
        f"grid: download of big:1 stopped; {dest} holds a partial download: "
        "run it again with --resume"
    ]
    r = cli("datastore", "download", "big:1", str(dest), "--resume")
    assert r.code == 0, r.err
    for i in (0, 99):
        assert (dest / f"{i:03d}.bin").read_bytes() == (src / f"{i:03d}.bin").read_bytes()


_SLOW = """
import os, sys, time
from grid.client import Client
from grid.client.quick import QuickReader

def slowed(real):
    def slow(self, *args, **kwargs):
        open(os.environ["READY"], "w").close()
        time.sleep(60)
        return real(self, *args, **kwargs)
    return slow

for cls in (Client, QuickReader):  # list, show and ls read through QuickReader when they can
    if hasattr(cls, {method!r}):
        setattr(cls, {method!r}, slowed(getattr(cls, {method!r})))
from grid.cli.app import main
main(sys.argv[1:])
"""


def _signal_when_ready(home, ready, script: str, args: list[str], sig) -> tuple[int, str]:
    """Run ``script`` (which touches the file ``ready`` once inside the operation) with
    ``args``; send ``sig`` then; return the exit code and stderr."""
    p = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(home, READY=str(ready)),
    )
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.01)
    p.send_signal(sig)
    _out, err = p.communicate(timeout=60)
    return p.returncode, err


def _interrupt_during(home, tmp_path, method: str, args: list[str], sig) -> tuple[int, str]:
    """Run the CLI with Client.``method`` held up, send ``sig`` once it is in it."""
    script = textwrap.dedent(_SLOW.format(method=method))
    return _signal_when_ready(home, tmp_path / f"ready-{method}", script, args, sig)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_gc_says_nothing_was_lost(cli, home, tmp_path, sig):
    _big_version(cli, tmp_path, files=3)
    code, err = _interrupt_during(home, tmp_path, "gc", ["datastore", "gc"], sig)
    assert code == 130
    assert err.strip().splitlines() == ["grid: gc stopped; nothing was lost, run gc again"]
    assert cli("datastore", "gc").code == 0
    assert cli("datastore", "verify", "big:1").code == 0


def test_an_interrupted_read_says_so(cli, home, tmp_path, kept):
    code, err = _interrupt_during(home, tmp_path, "ls", ["datastore", "ls", "kept"], signal.SIGINT)
    assert code == 130 and err.strip().splitlines() == ["grid: interrupted"]


@pytest.mark.slow
def test_an_interrupted_create_gives_one_next_step(home, tmp_path):
    src = tmp_path / "slow"
    src.mkdir()
    for i in range(40):
        (src / f"{i:02d}").write_bytes(os.urandom(1000))
    script = textwrap.dedent(
        """
        import os, sys, time
        from grid.sources.local import LocalSource

        real = LocalSource.open

        def slow(self, entry):
            open(os.environ["READY"], "a").close()
            time.sleep(0.3)
            return real(self, entry)

        LocalSource.open = slow
        from grid.cli.app import main
        main(sys.argv[1:])
        """
    )
    args = ["datastore", "create", str(src)]
    code, err = _signal_when_ready(home, tmp_path / "ready", script, args, signal.SIGINT)
    assert code == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("grid: ") and "resume" in last, err
    assert "new version" not in last and "error" not in last


@pytest.mark.parametrize(
    "args",
    [
        ["datastore", "show", "nosuch", "--debug"],
        ["datastore", "--debug", "show", "nosuch"],
        ["--debug", "datastore", "show", "nosuch"],
    ],
)
def test_debug_works_after_the_sub_command(cli, args):
    r = cli(*args)
    assert r.code == 3 and "Traceback" in r.err and "No such option" not in r.err, r.err


def test_debug_after_double_dash_is_an_argument(cli, kept):
    r = cli("datastore", "cat", "kept:1", "--", "--debug")
    assert r.code == 3 and "Traceback" not in r.err


# -- D: a read-only GRID_HOME ---------------------------------------------------------------


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
@pytest.mark.parametrize("existing", [True, False], ids=["used", "empty"])
def test_a_read_only_grid_home_is_named_in_one_line(cli, home, kept, existing):
    if not existing:
        shutil.rmtree(home)
        home.mkdir()
    home.chmod(0o555)
    try:
        for args in (
            ["datastore"],
            ["datastore", "ls", "kept:1"],
            ["datastore", "create", str(kept)],
        ):
            r = cli(*args, obey_permissions=True)
            line = one_line_error(r)
            assert r.code == 7, line
            assert f"GRID_HOME {home} is not writable" in line
            assert "SQL" not in line and "sqlalche.me" not in line
    finally:
        home.chmod(0o755)


def test_a_wrapped_multi_line_error_is_cut_to_its_first_line(capsys, tmp_path, monkeypatch):
    import sqlite3

    from sqlalchemy import exc as sa_exc

    from grid.cli.errors import report
    from grid.errors import SourceError, StorageError

    monkeypatch.setenv("GRID_HOME", str(tmp_path))  # writable: the error is shown as it is
    cause = sa_exc.OperationalError(
        "INSERT INTO x VALUES (?)", (1,), sqlite3.OperationalError("disk I/O error")
    )
    assert "\n" in str(cause)
    try:
        raise StorageError(f"cannot open the catalog at sqlite:///x.db: {cause}") from cause
    except StorageError as exc:
        assert report(exc, debug=False) == 7
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("grid: error: cannot open the catalog at sqlite:///x.db: ")
    assert "disk I/O error" in err and "INSERT" not in err and "sqlalche.me" not in err
    # a name holding a newline is not cut: it stays whole, escaped
    try:
        raise SourceError("cannot read /d/a\nb: Permission denied") from OSError(13, "denied")
    except SourceError as exc:
        assert report(exc, debug=False) == 5
    assert capsys.readouterr().err.startswith(
        "grid: error: cannot read /d/a\\nb: Permission denied ("
    )
