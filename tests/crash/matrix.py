"""Crash matrix (issue 18): stop a grid command at a random moment (kill -9, SIGTERM, or a full
disk under GRID_HOME), check what it left, run the same command again and check that it
finished the job (``tests.crash.checks``).

A scenario is an op: what the stopped command does, from which state. A trial is
one op under one seed: the seed picks the stop (``stop_of``) and the moment (uniform over a
whole run's measured duration, or from a milestone where the work has begun over the rest of
it) or the free space on the full disk.
``run_trial(scenario, seed, rig)`` returns what it saw and checked, and raises ``Violation``
when an invariant does not hold. Ops share the trees and servers of a ``tests.crash.rig.Rig``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grid
from tests.crash import checks
from tests.crash.rig import (
    Calibration,
    Files,
    Rig,
    resize,
    stored_objects,
    tmpfs,
    tree_bytes,
    used_bytes,
)

GRID = [sys.executable, "-m", "tests.crash.grid_small_packs"]  # grid, packs of 1 MiB
_ROOMY = 512 << 20  # a full disk's tmpfs before the op, and after the stop
_WAIT = 180  # seconds a command may take, stopped or not
_PACK_COPY = 4 << 20  # gc's repack writes new packs before it deletes any: room for them


@dataclass
class Plan:
    """What an op's set-up made and runs: ``argv`` (after ``grid``) on datastore ``name``.

    ``kept``: versions that, when present, must hold these files byte for byte. A create makes
    version ``target`` holding ``source``; a delete removes ``doomed`` (None: the datastore);
    ``keep_last``: the retention the create applies."""

    argv: list[str]
    name: str = "ds"
    kept: dict[int, Files] = field(default_factory=dict)
    target: int | None = None
    source: Files | None = None
    doomed: int | None = None
    keep_last: int | None = None

    @property
    def kind(self) -> str:
        return self.argv[1]  # create, gc, delete


Setup = Callable[[grid.Client, Rig, random.Random], Plan]
Milestone = Callable[[Path], Callable[[], bool]]  # GRID_HOME -> "has the work begun?"


def _scratch(prefix: str, suffix: str) -> Milestone:
    """Begun once a working file is in GRID_HOME/tmp: a create's manifest being written
    (its version has a number), gc's scratch table (it holds the gc lock)."""

    def milestone(home: Path) -> Callable[[], bool]:
        def begun() -> bool:
            with contextlib.suppress(OSError):
                return any(n.startswith(prefix) and suffix in n for n in os.listdir(home / "tmp"))
            return False

        return begun

    return milestone


def _manifest_gone(home: Path) -> Callable[[], bool]:
    """A delete has begun once a manifest is gone (its catalog rows went first)."""
    count = len(stored_objects(home, "manifests"))
    return lambda: len(stored_objects(home, "manifests")) < count


def _create_op(source: Callable[[Rig], list[str]]) -> Setup:
    def setup(c: grid.Client, rig: Rig, rng: random.Random) -> Plan:
        c.create(str(rig.tree("small")), "ds")  # an earlier version: never touched
        argv = ["datastore", "create", *source(rig), "--name", "ds", "--json"]
        return Plan(argv, kept={1: rig.trees["small"]}, target=2, source=rig.trees["main"])

    return setup


def _s3(rig: Rig) -> list[str]:
    assert rig.s3_source and rig.s3_endpoint, "the rig has no S3 source"
    return [rig.s3_source, "--endpoint-url", rig.s3_endpoint]


def _gc_setup(c: grid.Client, rig: Rig, rng: random.Random) -> Plan:
    """ds:1 (big + shared) deleted, ds:2 (shared + fresh) kept: ds:1's pack is mostly dead, so
    gc repacks it; datastore ``old`` deleted: its pack is dead, so gc deletes it."""
    for tree, name in (("gc1", "ds"), ("gc2", "ds"), ("doomed", "old")):
        c.create(str(rig.tree(tree)), name)
    c.delete("ds", 1)
    c.delete("old")
    return Plan(["datastore", "gc", "--grace", "0", "--json"], kept={2: rig.trees["gc2"]})


def _history(c: grid.Client, rig: Rig, count: int) -> dict[int, Files]:
    for i in range(count):
        c.create(str(rig.tree(f"v{i}")), "ds")
    return {i + 1: rig.trees[f"v{i}"] for i in range(count)}


def _delete_setup(c: grid.Client, rig: Rig, rng: random.Random) -> Plan:
    kept = _history(c, rig, 4)
    doomed = rng.choice([2, None])  # one version, or the whole datastore
    ref = "ds" if doomed is None else f"ds:{doomed}"
    return Plan(["datastore", "delete", ref, "--yes"], kept=kept, doomed=doomed)


def _keep_last_setup(c: grid.Client, rig: Rig, rng: random.Random) -> Plan:
    kept = _history(c, rig, 3)
    argv = ["datastore", "create", str(rig.tree("main")), "--name", "ds", "--keep-last", "2"]
    return Plan([*argv, "--json"], kept=kept, target=4, source=rig.trees["main"], keep_last=2)


_CREATING = _scratch("", ".manifest")
OPS: dict[str, tuple[Setup, Milestone]] = {
    "create-folder": (_create_op(lambda rig: [str(rig.tree("main"))]), _CREATING),
    "create-archive": (_create_op(lambda rig: [str(rig.archive_url)]), _CREATING),
    "create-s3": (_create_op(_s3), _CREATING),
    "gc-repack": (_gc_setup, _scratch("gc-", ".sqlite")),
    "delete": (_delete_setup, _manifest_gone),
    "keep-last": (_keep_last_setup, _CREATING),
}
STOPS = ("kill9", "term", "diskfull")
SCENARIOS = list(OPS)


def stop_of(seed: int) -> tuple[str, bool]:
    """A seed's stop, and whether its moment counts from the milestone: seeds take the stops
    in turn, and every other round of three counts from the milestone."""
    return STOPS[seed % 3], bool(seed // 3 % 2)


class Violation(AssertionError):
    """An invariant that did not hold after a stop; the message names scenario and seed."""


@dataclass
class Trial:
    """What one trial did: the stop (``moment`` s after start or the milestone, or the disk's
    free bytes),
    the stopped command's exit code, the target's status after it, the rerun's version
    and stored bytes against a whole run's, and every check that passed."""

    scenario: str
    seed: int
    stop: str
    moment: float | None = None
    free: int | None = None
    stopped_rc: int | None = None
    status: str = ""
    rerun_number: int | None = None
    rerun_stored: int | None = None
    whole_stored: int = 0
    checked: list[str] = field(default_factory=list)


def run_trial(scenario: str, seed: int, rig: Rig) -> Trial:
    """Run one trial (see the module docstring); its GRID_HOME is removed if it passes."""
    op, (stop, from_milestone) = scenario, stop_of(seed)
    rng = random.Random(f"{scenario}:{seed}")
    cal = calibrate(op, rig)
    setup, milestone = OPS[op]
    trial = Trial(scenario, seed, stop, whole_stored=cal.stored)
    folder = rig.root / "trials" / f"{op}-{stop}-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        with _home(folder, stop == "diskfull") as home:
            env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0"}
            with grid.Client(str(home), fsync=False) as c:
                plan = setup(c, rig, rng)
            before = checks.pack_bytes(home)
            if stop == "diskfull":  # free space for about what a whole run writes
                trial.free = int(rng.uniform(0, max(cal.growth, _PACK_COPY) * 1.5))
                resize(home, used_bytes(home) + trial.free)
                p = _run(plan.argv, env)
                resize(home, _ROOMY)
            else:
                begun = milestone(home) if from_milestone else None
                trial.moment = rng.uniform(0, cal.work if begun else cal.seconds)
                p = _run(plan.argv, env, stop_after=trial.moment, begun=begun, kill=stop == "kill9")
            trial.stopped_rc = p.returncode
            checks.after_stop(trial, plan, home, stop, p)
            left = checks.pack_bytes(home) - before
            rerun = _run(plan.argv, env)
            checks.after_rerun(trial, plan, home, rerun, left)
            checks.settled(trial, plan, home)
    except AssertionError as exc:
        raise Violation(f"{scenario} seed {seed} ({trial}): {exc}") from exc
    shutil.rmtree(folder, ignore_errors=True)
    return trial


def calibrate(op: str, rig: Rig) -> Calibration:
    """A whole run of ``op`` (once per rig): how long it takes and what it stores."""
    if op in rig.calibrated:
        return rig.calibrated[op]
    home = rig.root / "calibration" / op
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "GRID_HOME": str(home), "GRID_FSYNC": "0"}
    setup, milestone = OPS[op]
    with grid.Client(str(home), fsync=False) as c:
        plan = setup(c, rig, random.Random(0))
    size = tree_bytes(home)
    marks: list[float] = []
    started = time.monotonic()
    p = _run(plan.argv, env, begun=milestone(home), marks=marks)
    seconds = time.monotonic() - started
    assert p.returncode == 0, f"calibration of {op} failed: {p.stderr}"
    stored = checks.json_out(p).get("stored_bytes", 0) if plan.kind == "create" else 0
    work = seconds - (marks[0] - started if marks else 0.0)
    growth = max(0, tree_bytes(home) - size)
    rig.calibrated[op] = Calibration(seconds, work, stored, growth)
    return rig.calibrated[op]


def _run(
    argv: list[str],
    env: dict[str, str],
    stop_after: float | None = None,
    begun: Callable[[], bool] | None = None,
    kill: bool = True,
    marks: list[float] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``grid ARGV``. With ``stop_after``, send SIGKILL (``kill``) or SIGTERM that many
    seconds after it starts (after ``begun()`` turns true, when given; it is polled every
    millisecond and the time it turned is appended to ``marks``), unless it has finished."""
    p = subprocess.Popen(
        [*GRID, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + _WAIT
    while begun is not None and p.poll() is None and time.monotonic() < deadline:
        if begun():
            if marks is not None:
                marks.append(time.monotonic())
            break
        time.sleep(0.001)
    try:
        out, err = p.communicate(timeout=stop_after if stop_after is not None else _WAIT)
    except subprocess.TimeoutExpired:
        if stop_after is None:
            p.kill()
            p.communicate()
            raise AssertionError(f"grid {' '.join(argv)} did not finish in {_WAIT} s") from None
        p.kill() if kill else p.terminate()
        try:
            out, err = p.communicate(timeout=_WAIT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise AssertionError(f"grid did not stop {_WAIT} s after SIGTERM") from None
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@contextlib.contextmanager
def _home(folder: Path, small_disk: bool) -> Iterator[Path]:
    """The trial's GRID_HOME: on a roomy tmpfs (resized to fill it up) for a full disk."""
    if not small_disk:
        yield folder / "home"
        return
    with tmpfs(folder / "disk", _ROOMY) as mnt:
        yield mnt
