r"""`grid datastore schedule/unschedule/schedules`: the seed's hourly-upload crontab recipe,
installed and removed for the user.

Each schedule is one line of the user's crontab, tagged ``# grid-schedule:NAME``. It runs the
same ``grid datastore create`` a person would type, under ``flock -n`` so that a run still busy
when the next one is due makes that one skip instead of piling up, and appends its output to
``$GRID_HOME/logs/schedule-NAME.log``.

cron reads a ``%`` in a command as a newline (what follows is the command's stdin), so each
``%`` of a path is written ``\%``; a path holding a newline or another control character is
refused, as it would split the crontab line (or forge another).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

from grid.client import DatastoreClient
from grid.errors import ConflictError, NotFoundError, UsageError
from grid.records import ScheduleInfo

TAG = "# grid-schedule:"
_CRON_DAEMONS = ("cron", "crond", "fcron", "cronie", "busybox")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Schedule:
    """One installed schedule."""

    name: str
    cron: str
    command: str
    log: str


def cron_spec(every: str) -> str:
    """The crontab time fields for ``every``: ``5m``…``30m`` (dividing an hour), ``1h``…``12h``
    (dividing a day) or ``1d``."""
    m = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", every.lower())
    rule = "--every takes 5m, 10m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h or 1d"
    if not m:
        raise UsageError(f"{every!r} is not an interval", rule=rule)
    n, unit = int(m.group(1)), m.group(2)
    if unit == "m" and n in (5, 10, 15, 20, 30):
        return f"*/{n} * * * *"
    if unit == "h" and n == 1:
        return "0 * * * *"
    if unit == "h" and n in (2, 3, 4, 6, 8, 12):
        return f"0 */{n} * * *"
    if (unit == "d" and n == 1) or (unit == "h" and n == 24):
        return "0 0 * * *"
    raise UsageError(f"cannot run every {every}", rule=rule)


def seconds(every: str) -> int:
    """``every`` (as ``cron_spec`` takes it) in seconds."""
    cron_spec(every)  # the same intervals as the crontab's, and the same error
    m = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", every.lower())
    assert m is not None
    return int(m.group(1)) * {"m": 60, "h": 3600, "d": 86400}[m.group(2)]


def server_line(s: ScheduleInfo) -> tuple[str, str, str]:
    """A server's schedule as ``grid datastore schedules`` lists it: name, interval and
    source, and how its last turn went."""
    every = (
        f"every {s.every_seconds // 3600}h"
        if s.every_seconds % 3600 == 0
        else (f"every {s.every_seconds // 60}m")
    )
    last = s.last_job
    if last is None:
        turn = "no turn yet"
    else:
        version = last.result.get("version")
        made = (
            f"made {s.name}:{version['number']}"
            if isinstance(version, dict)
            else ("unchanged" if last.result.get("unchanged") else last.error or last.state)
        )
        turn = f"last turn: {made} (job {last.id})"
    return s.name, f"{every} (server)", f"{s.source}  {turn}"


def has_crontab() -> bool:
    """Whether this machine has ``crontab`` (the server's schedules need none)."""
    return shutil.which("crontab") is not None


def _crontab() -> str:
    path = shutil.which("crontab")
    if path is None:
        raise UsageError(
            "crontab is not installed: install cron (Debian: apt-get install cron)",
            rule="scheduling needs cron",
        )
    return path


def cron_running() -> bool | None:
    """Whether a cron daemon runs on this machine (None: cannot tell, e.g. no /proc)."""
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue  # gone, or not ours to read
        if comm in _CRON_DAEMONS and (comm != "busybox" or _busybox_crond(pid)):
            return True
    return False


def _busybox_crond(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return len(argv) > 1 and argv[1] == b"crond"


def escape_percent(command: str) -> str:
    """``command`` as a crontab line must hold it: each ``%`` written ``\\%``."""
    if "\\%" in command:
        # cron keeps a backslash unless a % follows it, and a kept one also keeps the next
        # character: no crontab text makes cron hand the shell a backslash followed by a %.
        raise UsageError(
            "cron cannot run a command with a backslash just before a %",
            rule="scheduled paths must not hold \\%",
        )
    return command.replace("%", "\\%")


def unescape_percent(command: str) -> str:
    """The command cron runs for a crontab line's ``command`` (as written by escape_percent)."""
    return command.replace("\\%", "%")


def _read() -> list[str]:
    r = subprocess.run([_crontab(), "-l"], capture_output=True, text=True)
    if r.returncode != 0:
        if "no crontab" in r.stderr:
            return []
        raise ConflictError(f"cannot read the crontab: {r.stderr.strip()}")
    return r.stdout.splitlines()


def _write(lines: list[str]) -> None:
    text = "".join(f"{line}\n" for line in lines)
    r = subprocess.run([_crontab(), "-"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise ConflictError(f"cannot install the crontab: {r.stderr.strip()}")


def schedules() -> list[Schedule]:
    """Every grid schedule in the user's crontab."""
    out = []
    for line in _read():
        if TAG not in line:
            continue
        body, name = line.rsplit(TAG, 1)
        fields = body.split(None, 5)
        command = unescape_percent(fields[5].strip() if len(fields) > 5 else "")
        log = shlex.split(command.rsplit(">>", 1)[-1])[0] if ">>" in command else ""
        out.append(Schedule(name.strip(), " ".join(fields[:5]), command, log))
    return out


def install(home: str, source: str, name: str, every: str, extra: list[str]) -> Schedule:
    """Add (or replace) the schedule of datastore ``name``."""
    spec = cron_spec(every)
    if not DatastoreClient.fetchable(source):  # a URL is fetched at each run
        source = os.path.abspath(source)
        if not os.path.exists(source):
            raise UsageError(
                f"{source} does not exist",
                rule="SOURCE must be a folder, a file, an archive URL or an s3:// prefix",
            )
    grid = shutil.which("grid") or os.path.join(os.path.dirname(sys.executable), "grid")
    logs = os.path.join(home, "logs")
    os.makedirs(logs, exist_ok=True)
    log = os.path.join(logs, f"schedule-{name}.log")
    lock = os.path.join(logs, f"schedule-{name}.lock")
    create = [grid, "datastore", "create", source, "--name", name, *extra]
    command = (
        f"GRID_HOME={shlex.quote(home)} flock -n {shlex.quote(lock)} "
        f"{shlex.join(create)} >> {shlex.quote(log)} 2>&1"
    )
    if _CONTROL.search(command):
        raise UsageError(
            f"cannot schedule {shlex.quote(source)} with GRID_HOME {shlex.quote(home)}: a newline "
            "or control character in a path would break the crontab line",
            rule="scheduled paths hold no control characters",
        )
    lines = [line for line in _read() if not line.endswith(f"{TAG}{name}")]
    lines.append(f"{spec} {escape_percent(command)} {TAG}{name}")
    _write(lines)
    return Schedule(name, spec, command, log)


def remove(name: str) -> None:
    """Remove the schedule of datastore ``name``."""
    lines = _read()
    kept = [line for line in lines if not line.endswith(f"{TAG}{name}")]
    if len(kept) == len(lines):
        raise NotFoundError(f"no schedule for {name!r}: `grid datastore schedules` lists them")
    _write(kept)
