"""The invariants a crash trial checks (``tests.crash.matrix``): after the stop, after the
same command ran again, and once two gc runs have settled the store. Each appends what it
checked to ``trial.checked``; a broken invariant is an AssertionError."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grid
from grid.errors import DatastoreNotFoundError, VersionNotReadyError
from tests.crash.rig import referenced_packs, stored_objects

if TYPE_CHECKING:
    from tests.crash.matrix import Plan, Trial

UNFINISHED = ("uploading", "processing", "optimizing", "interrupted")
# what a create's version may be left as, by stop (absent: stopped before it had a number)
AFTER_STOP = {
    "kill9": {"absent", "uploading", "processing", "optimizing", "succeeded"},
    "term": {"absent", "interrupted", "succeeded"},
    # unfinished: the catalog, on the full disk too, could not record the failure (the
    # create's process is gone, so the rerun resumes it)
    "diskfull": {"absent", "failed", "succeeded", "uploading", "processing", "optimizing"},
}
EXIT = {"kill9": {-9, 0}, "term": {-15, 130, 0}, "diskfull": {0, 7}}  # 7: no space
_SLACK = 64 << 10  # a rerun's manifest may differ in size from a whole run's
_POOL = "Exception closing connection"
_IGNORED = "Exception ignored in: <function _get_module_lock"
_UNINDEXED = 8 << 20  # a failed create's unindexed packs: 1 MiB (grid_small_packs) per worker


def pack_bytes(home: Path) -> int:
    return sum(stored_objects(home, "packs").values())


def json_out(p: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(p.stdout)
    return out


def _versions(c: grid.Client, name: str) -> dict[int, grid.VersionInfo]:
    try:
        return {v.number: v for v in c.versions(name)}
    except DatastoreNotFoundError:
        return {}


def _readable(trial: Trial, c: grid.Client) -> None:
    """Every succeeded version verifies; no other can be read, nor is read as the latest."""
    for d in c.list():
        versions = c.versions(d.name)
        if any(v.status == "succeeded" for v in versions):
            latest = c.snapshot(d.name)
            latest.close()
            assert latest.version.status == "succeeded", f"reads {latest.version} as the latest"
        for v in versions:
            if v.status == "succeeded":
                report = c.verify(d.name, v.number)
                assert report.ok, f"{v.ref} does not verify: {report.damaged}"
                trial.checked.append(f"{v.ref} verifies")
                continue
            for read in (c.ls, c.iter_files):
                try:
                    list(read(d.name, v.number))
                except VersionNotReadyError:
                    continue
                raise AssertionError(f"{v.ref} ({v.status}) can be read")
            trial.checked.append(f"{v.ref} ({v.status}) is not readable")


def _intact(trial: Trial, c: grid.Client, plan: Plan, must: set[int]) -> None:
    """Versions in ``plan.kept`` hold their files when present; those in ``must`` are."""
    have = _versions(c, plan.name)
    for number, files in plan.kept.items():
        if number not in have:
            assert number not in must, f"{plan.name}:{number} is gone"
            continue
        assert have[number].status == "succeeded", f"{have[number]}"
        assert dict(c.iter_files(plan.name, number)) == files, f"{plan.name}:{number} differs"
        trial.checked.append(f"{plan.name}:{number} intact")


def _must_keep(plan: Plan) -> set[int]:
    if plan.kind == "gc" or (plan.kind == "create" and plan.keep_last is None):
        return set(plan.kept)
    if plan.kind == "delete" and plan.doomed is not None:
        return set(plan.kept) - {plan.doomed}
    return set()


def after_stop(
    trial: Trial, plan: Plan, home: Path, stop: str, p: subprocess.CompletedProcess[str]
) -> None:
    """What the stopped command left: a legal exit and status, nothing half-made readable."""
    assert p.returncode in EXIT[stop], f"exit {p.returncode}: {p.stderr[-2000:]}"
    # SQLAlchemy logs (and survives) a KeyboardInterrupt while it closes a connection; any
    # other traceback is a crash
    # ... and Python ignores (prints, then goes on) a KeyboardInterrupt raised in an import
    # lock's callback: SIGTERM at start-up may then go unheeded
    benign = p.stderr.count(_POOL) + p.stderr.count(_IGNORED)
    assert p.stderr.count("Traceback") <= benign, p.stderr[-2000:]
    with grid.Client(str(home), fsync=False) as c:
        have = _versions(c, plan.name)
        if plan.kind == "create":
            assert plan.target is not None
            v = have.get(plan.target)
            trial.status = v.status if v else "absent"
            assert trial.status in AFTER_STOP[stop], f"{plan.name}:{plan.target} {v}"
            trial.checked.append(f"after {stop}: {plan.name}:{plan.target} {trial.status}")
        elif plan.kind == "delete":
            gone = plan.doomed not in have if plan.doomed else not have
            trial.status = "deleted" if gone else "present"
        _readable(trial, c)
        _intact(trial, c, plan, _must_keep(plan))
        if plan.keep_last:
            done = [n for n, v in have.items() if v.status == "succeeded"]
            assert len(done) >= plan.keep_last, f"retention left {done}"


def after_rerun(
    trial: Trial, plan: Plan, home: Path, p: subprocess.CompletedProcess[str], left: int
) -> None:
    """The same command again finishes: a create the same version, storing only what the
    stopped one had not (``left``: bytes of whole packs it stored)."""
    if plan.kind == "delete" and trial.status == "deleted":
        assert p.returncode == 3, f"delete again: exit {p.returncode}: {p.stderr}"
        trial.checked.append("delete again: not found")
        return
    assert p.returncode == 0, f"rerun: exit {p.returncode}: {p.stderr[-2000:]}"
    trial.checked.append("rerun finished")
    if plan.kind != "create":
        return
    assert plan.target is not None
    out = json_out(p)
    trial.rerun_number, trial.rerun_stored = out["number"], out["stored_bytes"]
    resumed = trial.status in ("absent", *UNFINISHED)
    want = plan.target if resumed else plan.target + 1
    assert out["number"] == want, f"rerun made {out['number']}, not {want}"
    assert out["status"] == "succeeded"
    if trial.status in UNFINISHED:
        assert f"resuming {plan.name}:{plan.target}" in p.stderr, p.stderr
    whole = trial.whole_stored
    if trial.status != "failed":  # resumed: the stopped run's packs are all kept
        assert trial.rerun_stored <= whole - left + _SLACK, f"stored {trial.rerun_stored}, {left=}"
    if left > _UNINDEXED:  # a failed create's packs it had not indexed yet are stored again
        assert trial.rerun_stored < whole, f"stored {trial.rerun_stored} again, {left=}"
    trial.checked.append(f"rerun stored {trial.rerun_stored} of {whole} ({left} left before)")


def settled(trial: Trial, plan: Plan, home: Path) -> None:
    """After the rerun: nothing unfinished, the data right, and gc twice leaves no garbage."""
    with grid.Client(str(home), fsync=False) as c:
        have = _versions(c, plan.name)
        stuck = [v.ref for d in c.list() for v in c.versions(d.name) if v.status in UNFINISHED]
        assert not stuck, f"unfinished after the rerun: {stuck}"
        if plan.kind == "create":
            assert plan.source is not None and trial.rerun_number is not None
            got = dict(c.iter_files(plan.name, trial.rerun_number))
            assert got == plan.source, f"{plan.name}:{trial.rerun_number} differs from its source"
            trial.checked.append(f"{plan.name}:{trial.rerun_number} equals its source")
        if plan.keep_last:
            done = [n for n, v in have.items() if v.status == "succeeded"]
            assert len(done) == plan.keep_last and max(done) == trial.rerun_number, done
            trial.checked.append(f"retention kept {done}")
        if plan.kind == "delete":
            assert (plan.doomed not in have) if plan.doomed else not have, sorted(have)
        _intact(trial, c, plan, _must_keep(plan))
        c.gc(grace=0)
        second = c.gc(grace=0)
        left = (
            second.packs_deleted, second.packs_repacked, second.manifests_deleted,
            second.bytes_reclaimed, second.kept_young, second.kept_for_readers,
        )  # fmt: skip
        assert left == (0, 0, 0, 0, 0, 0), f"a second gc still reclaims: {second}"
        trial.checked.append("a second gc reclaims nothing")
        packs, used = set(stored_objects(home, "packs")), referenced_packs(c)
        assert packs == used, f"unreferenced packs {packs - used}, missing {used - packs}"
        manifests = set(stored_objects(home, "manifests"))
        named = {v.manifest_id for d in c.list() for v in c.versions(d.name)}
        named |= c._ctx.store.bases_needed(named)  # what a kept delta is stored against
        assert manifests <= named, f"orphan manifests {manifests - named}"
        trial.checked.append(f"{len(packs)} packs, all referenced; no orphan manifest")
        _readable(trial, c)
        _intact(trial, c, plan, _must_keep(plan))
