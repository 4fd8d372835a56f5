"""Small helpers shared by the bench scripts (stdlib only, usable from any venv).

- ``ensure_small(root, files)``: the ``small`` dataset (ImageNet-like: FILES files of 2-200 KiB
  in 100 class folders) at ROOT/small, generated with ``../shared/bench/make_datasets.py`` when
  missing; ``remove_dataset`` deletes what it generated.
- ``Timer``: wall seconds of a ``with`` block (``time.perf_counter``).
- ``median_of(fn, repeat)``: call ``fn`` REPEAT times, return (median, every value).
- ``warm_cache(dir)``: read every file once (``tar | cat``), so a timed pass starts with the
  files in the page cache. Benchmarks here never drop the page cache (that needs root and
  disturbs other users of a shared VM): "cold" means "first pass through a fresh mount /
  process, its backing files already in the page cache", "warm" the next pass.
- ``table(header, rows)``: an aligned text table (first column left, the others right).
- ``tree_size(dir)``: (files, apparent bytes) of the regular files under DIR.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MAKE_DATASETS = REPO_ROOT.parent / "shared" / "bench" / "make_datasets.py"
MB = 1_000_000


class BenchError(RuntimeError):
    """A command failed or a prerequisite is missing; the message says which."""


def grid_cli() -> list[str]:
    """The grid CLI: ``.venv/bin/grid`` if present, else ``python -m grid``."""
    venv = REPO_ROOT / ".venv" / "bin" / "grid"
    return [str(venv)] if venv.exists() else [sys.executable, "-m", "grid"]


def venv_python() -> str:
    """The project's ``.venv/bin/python`` if present, else this interpreter."""
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def ensure_small(root: Path, files: int, jobs: int = 2) -> tuple[Path, bool]:
    """Return (ROOT/small, whether this call generated it). An existing ROOT/small of another
    file count is an error (pick another ROOT), never silently reused."""
    path, manifest = root / "small", root / "small.manifest.json"
    if path.is_dir() and manifest.exists():
        found = json.loads(manifest.read_text()).get("files")
        if found != files:
            raise BenchError(f"{path} holds {found} files, not {files}: use another data root")
        return path, False
    if path.exists():
        raise BenchError(f"{path} exists without {manifest.name}: remove it or use another root")
    if not MAKE_DATASETS.exists():
        raise BenchError(f"{path} is missing and {MAKE_DATASETS} does not exist")
    print(f"generating {path} ({files:,} files) with {MAKE_DATASETS}", flush=True)
    cmd = [sys.executable, str(MAKE_DATASETS), "--root", str(root), "--only", "small"]
    subprocess.run([*cmd, "--small-files", str(files), "--jobs", str(jobs)], check=True)
    return path, True


def remove_dataset(path: Path) -> None:
    """Delete a generated dataset folder and its manifest (and ROOT if that leaves it empty)."""
    shutil.rmtree(path, ignore_errors=True)
    (path.parent / f"{path.name}.manifest.json").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def median_of(fn: Callable[[], float], repeat: int) -> tuple[float, list[float]]:
    """Call ``fn`` ``repeat`` times; return the median of its results and all of them."""
    values = [fn() for _ in range(repeat)]
    return statistics.median(values), values


def warm_cache(directory: Path) -> None:
    """Read every file under ``directory`` once, so it sits in the page cache."""
    subprocess.run(["sh", "-c", 'tar cf - -C "$0" . | cat >/dev/null', str(directory)], check=True)


def tree_size(path: Path) -> tuple[int, int]:
    """Return (files, apparent bytes) of every regular file under ``path``."""
    files = total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                files += 1
                total += st.st_size
    return files, total


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An aligned table: the first column left-aligned, the others right; None prints '-'."""
    cells = [list(header)] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines)
