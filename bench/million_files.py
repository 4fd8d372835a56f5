#!/usr/bin/env python3
"""Ten million files (issue 18): a version of N tiny files, made and read through grid's public
entry points, each figure printed beside its target and beside Azure ML's.

The tree (``layout``): N files of 20-40 bytes (each its own path and number, so no two are
alike), 1,000 per folder, 100 folders per top folder (``g0000/d000/f0000.txt``...), plus a
chain ``deep/l01/.../l19/leaf.txt`` 21 levels down. It is served as a tar stream generated on
the fly on 127.0.0.1 (``ArchiveServer``: never on disk) and made a version by ``grid.Client
.create(URL)`` in a child process; a second version differs in 1 % of the files.

Figures (peak RSS: the child process's ``ru_maxrss``):
  create         seconds and peak RSS of ``Client.create`` of the archive URL   (≤ 500 MiB)
  open           ``Client.snapshot`` of the version, first (unpacks the manifest into the
                 cache) and then (median of 5)                                  (≤ 100 ms)
  ls             ``Client.ls`` of a 1,000-entry folder, median of 5            (≤ 20 ms)
  stat           ``Client.stat`` of the 21-level path, median of 5             (≤ 5 ms)
  mount          ``grid datastore mount`` (the CLI, until the mount answers), then the first
                 listing of a 1,000-entry folder through it, and both together  (≤ 1 s)
                 (Azure ML: 554 s to a first listdir of a 4M-file folder)
  diff           ``Client.diff`` of the two versions (1 % differ): seconds, peak RSS
  gc             ``Client.gc(grace=0)`` after deleting version 1: seconds, peak RSS

    .venv/bin/python bench/million_files.py                 # 10,000,000 files
    .venv/bin/python bench/million_files.py --files 1000000
    .venv/bin/python bench/million_files.py --one-version     # no 2nd version, diff, gc
    .venv/bin/python bench/million_files.py --store-level     # ingest a Source, no archive

GRID_HOME is a fresh folder under --tmp (default /tmp), deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import json
import os
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import harness  # noqa: E402  # bench/ is not a package

PER_DIR, DIRS_PER_TOP, DEPTH = 1000, 100, 20
MTIME = 1_700_000_000
DEEP_PATH = "deep/" + "/".join(f"l{i:02d}" for i in range(1, DEPTH)) + "/leaf.txt"
LS_FOLDER = "g0000/d000"
NAME = "million"
AZURE_LISTDIR_S = 554.0  # Azure ML: first listdir of a mounted 4M-file folder
MIB = 1 << 20


# -------------------------------------------------------------------------- the synthetic tree
def layout(files: int) -> Iterator[tuple[str, str, int | None]]:
    """(parent, name, file number or None for a folder) in path order, folders first."""
    parent = ""
    for level in range(DEPTH):
        name = f"l{level:02d}" if level else "deep"
        yield parent, name, None
        parent = f"{parent}/{name}" if parent else name
    yield parent, "leaf.txt", -1
    done = 0
    for top in range((files + PER_DIR * DIRS_PER_TOP - 1) // (PER_DIR * DIRS_PER_TOP)):
        tname = f"g{top:04d}"
        yield "", tname, None
        for sub in range(DIRS_PER_TOP):
            if done >= files:
                break
            folder = f"{tname}/d{sub:03d}"
            yield tname, folder[-4:], None
            for i in range(min(PER_DIR, files - done)):
                yield folder, f"f{i:04d}.txt", done
                done += 1


def content(path: str, number: int, changed: bool) -> bytes:
    """File ``number``'s bytes; with ``changed``, every 100th file differs."""
    if changed and number % 100 == 0:
        return f"{path} {number} v2\n".encode()
    return f"{path} {number}\n".encode()


class SyntheticTree:
    """The tree as a ``grid.tree.Source`` (for store-level use; the bench goes through tar)."""

    sequential = False

    def __init__(self, files: int, changed: bool = False) -> None:
        self.files, self.changed = files, changed

    def is_empty(self) -> bool:
        return False

    def cancel(self) -> None:
        pass

    def entries(self) -> Iterator[object]:
        from grid.tree import SourceEntry

        ns = MTIME * 10**9
        for parent, name, number in layout(self.files):
            path = f"{parent}/{name}" if parent else name
            if number is None:
                yield SourceEntry(parent, name, stat.S_IFDIR | 0o755, 0, ns, None, path)
            else:
                size = len(content(path, number, self.changed))
                yield SourceEntry(parent, name, stat.S_IFREG | 0o644, size, ns, None, path, number)

    def open(self, entry: object) -> io.BytesIO:
        path, number = entry.location, entry.ino  # type: ignore[attr-defined]
        return io.BytesIO(content(path, number, self.changed))


def _header(path: str, size: int, folder: bool) -> bytes:
    """A ustar header (what ``tarfile`` writes, without its per-member cost)."""
    name = path.encode() + (b"/" if folder else b"")
    head = bytearray(512)
    head[0 : len(name)] = name
    head[100:108] = b"0000755\0" if folder else b"0000644\0"
    head[108:124] = b"0000000\0" * 2
    head[124:136] = b"%011o\0" % size
    head[136:148] = b"%011o\0" % MTIME
    head[148:156] = b" " * 8
    head[156:157] = b"5" if folder else b"0"
    head[257:265] = b"ustar\x0000"
    head[148:156] = b"%06o\0 " % sum(head)
    return bytes(head)


def tar_stream(files: int, changed: bool) -> Iterator[bytes]:
    """The tree as an uncompressed tar, in parts of about 1 MiB."""
    out: list[bytes] = []
    size = 0
    for parent, name, number in layout(files):
        path = f"{parent}/{name}" if parent else name
        if number is None:
            out.append(_header(path, 0, True))
        else:
            data = content(path, number, changed)
            out.append(_header(path, len(data), False) + data + b"\0" * (-len(data) % 512))
        size += 512
        if size >= MIB:
            yield b"".join(out)
            out, size = [], 0
    out.append(b"\0" * 1024)
    yield b"".join(out)


class ArchiveServer:
    """``/v1.tar`` and ``/v2.tar`` (1 % changed) of ``files`` files on 127.0.0.1, generated
    as they are sent (HTTP/1.0, no length: the end of the body is the end of the archive)."""

    def __init__(self, files: int) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path not in ("/v1.tar", "/v2.tar"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-tar")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    for part in tar_stream(files, self.path == "/v2.tar"):
                        self.wfile.write(part)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ArchiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------ child operations
def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_main(argv: list[str]) -> int:
    """``_op HOME OP ARG...``: run one client operation, print seconds and peak RSS as JSON."""
    import grid

    home, op, *args = argv
    if op == "store":
        print(json.dumps(store_level(Path(home), int(args[0]))))
        return 0
    client = grid.Client(home, fsync=False)
    start = time.perf_counter()
    result: dict[str, object] = {}
    if op == "create":
        v = client.create(args[0], NAME, max_files=int(args[1]))
        result = {"version": v.number, "files": v.files}
    elif op == "diff":
        report = client.diff(NAME, 1, 2)
        result = {"changes": len(report.added) + len(report.removed) + len(report.modified)}
    elif op == "gc":
        client.delete(NAME, 1)
        gc = client.gc(grace=0)
        result = {"packs_deleted": gc.packs_deleted, "live_packs": gc.live_packs}
    result.update(seconds=time.perf_counter() - start, rss_mib=peak_rss_mib())
    client.close()
    print(json.dumps(result))
    return 0


def store_level(home: Path, files: int) -> dict[str, float]:
    """Ingest ``SyntheticTree(files)`` straight into a store under ``home`` and finish its
    manifest (no catalog, no archive): the store's own figures, for N too big to wait for."""
    from grid.objects import LocalDirectory
    from grid.store import ManifestWriter, Store
    from grid.store.ingest import ingest

    store = Store(
        LocalDirectory(str(home / "objects"), durable=False),
        str(home / "index.sqlite"),
        str(home / "cache"),
    )
    start = time.perf_counter()
    manifest = ManifestWriter(str(home / "manifest.sqlite"))
    stats = ingest(SyntheticTree(files), store, manifest)  # type: ignore[arg-type]
    manifest.finish({"files": str(stats.files)})
    store.close()
    return {"files": stats.files, "seconds": time.perf_counter() - start, "rss_mib": peak_rss_mib()}


def measure_store(files: int, home: Path) -> list[tuple[str, str, str, str]]:
    """``--store-level``: ingest in a child, then open, ls and stat the manifest here."""
    from grid.store import ManifestReader

    made = run_child(home, "store", str(files))
    rows = [
        (
            "ingest + finish (store)",
            f"{made['seconds']:.0f} s, {made['rss_mib']:.0f} MiB RSS",
            "≤ 500 MiB RSS",
            "-",
        )
    ]
    path = str(home / "manifest.sqlite")
    _, open_ms = timed(lambda: ManifestReader(path).close())
    rows.append(("open manifest", f"{open_ms:.1f} ms", "≤ 100 ms", "-"))
    reader = ManifestReader(path)
    try:
        _, ls_ms = timed(lambda: reader.list_plain(LS_FOLDER))
        rows.append((f"ls {LS_FOLDER} (1,000 entries)", f"{ls_ms:.1f} ms", "≤ 20 ms", "-"))
        _, stat_ms = timed(lambda: reader.stat(DEEP_PATH))
        rows.append(("stat (21 levels deep)", f"{stat_ms:.2f} ms", "≤ 5 ms", "-"))
    finally:
        reader.close()
    return rows


def run_child(home: Path, *args: str) -> dict[str, float]:
    cmd = [harness.venv_python(), str(Path(__file__).resolve()), "_op", str(home), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise harness.BenchError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------------- the figures
def timed(fn: object, repeat: int = 5) -> tuple[float, float]:
    """(first, median of the next ``repeat``) milliseconds of calling ``fn``."""
    values = []
    for _ in range(repeat + 1):
        with harness.Timer() as t:
            fn()  # type: ignore[operator]
        values.append(t.seconds * 1000)
    return values[0], statistics.median(values[1:])


def mount_listing(home: Path, mountpoint: Path, number: int) -> tuple[float, float]:
    """Seconds from starting ``grid datastore mount`` until it answers, and then to the first
    listing of LS_FOLDER through it."""
    env = {**os.environ, "GRID_HOME": str(home)}
    mountpoint.mkdir()
    start = time.perf_counter()
    subprocess.run(
        [*harness.grid_cli(), "datastore", "mount", f"{NAME}:{number}", str(mountpoint)],
        env=env,
        check=True,
        capture_output=True,
    )
    mounted = time.perf_counter()
    names = os.listdir(mountpoint / LS_FOLDER)
    seconds = (mounted - start, time.perf_counter() - mounted)
    subprocess.run(
        [*harness.grid_cli(), "datastore", "unmount", str(mountpoint)], env=env, check=False
    )
    if len(names) != PER_DIR:
        raise harness.BenchError(f"the mount listed {len(names)} entries in {LS_FOLDER}")
    return seconds


def measure(files: int, home: Path, one_version: bool) -> list[tuple[str, str, str, str]]:
    import grid

    rows = []
    max_files = 2 * files + 1000
    with ArchiveServer(files) as server:
        print(f"creating version 1 of {files:,} files from {server.url}/v1.tar", flush=True)
        made = run_child(home, "create", f"{server.url}/v1.tar", str(max_files))
        rows.append(
            (
                "create (1st version)",
                f"{made['seconds']:.0f} s, {made['rss_mib']:.0f} MiB RSS",
                "≤ 500 MiB RSS",
                "-",
            )
        )
        print(f"made: {made}", flush=True)
        if not one_version:
            again = run_child(home, "create", f"{server.url}/v2.tar", str(max_files))
            rows.append(
                (
                    "create (2nd, 1 % new)",
                    f"{again['seconds']:.0f} s, {again['rss_mib']:.0f} MiB RSS",
                    "≤ 500 MiB RSS",
                    "-",
                )
            )
    last = 1 if one_version else 2
    client = grid.Client(str(home), fsync=False)
    try:
        first, warm = timed(lambda: client.snapshot(NAME, last).close())
        rows.append(("open version (1st: unpack)", f"{first:.0f} ms", "-", "-"))
        rows.append(("open version", f"{warm:.1f} ms", "≤ 100 ms", "-"))
        _, ls_ms = timed(lambda: client.ls(NAME, last, LS_FOLDER))
        rows.append((f"ls {LS_FOLDER} (1,000 entries)", f"{ls_ms:.1f} ms", "≤ 20 ms", "-"))
        _, stat_ms = timed(lambda: client.stat(NAME, last, DEEP_PATH))
        rows.append(("stat (21 levels deep)", f"{stat_ms:.1f} ms", "≤ 5 ms", "-"))
        if len(client.ls(NAME, last, LS_FOLDER)) != PER_DIR:
            raise harness.BenchError(f"{LS_FOLDER} does not hold {PER_DIR} entries")
    finally:
        client.close()
    mounting, listing = mount_listing(home, home / "mnt", last)
    azure = f"{AZURE_LISTDIR_S:.0f} s (4M folder)"
    rows.append(("mount (CLI until it answers)", f"{mounting:.2f} s", "-", "-"))
    rows.append((f"1st listing of {LS_FOLDER} through it", f"{listing * 1000:.0f} ms", "-", "-"))
    rows.append(("mount + 1st listing", f"{mounting + listing:.2f} s", "≤ 1 s", azure))
    if one_version:
        return rows
    print("diff and gc", flush=True)
    diffed = run_child(home, "diff")
    rows.append(
        (
            "diff v1 v2 (1 % differ)",
            f"{diffed['seconds']:.0f} s, {diffed['rss_mib']:.0f} MiB RSS",
            "bounded memory",
            "-",
        )
    )
    collected = run_child(home, "gc")
    rows.append(
        (
            "delete v1 + gc",
            f"{collected['seconds']:.0f} s, {collected['rss_mib']:.0f} MiB RSS",
            "bounded memory",
            "-",
        )
    )
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_op":
        return child_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000_000)
    parser.add_argument("--tmp", default="/tmp", help="where GRID_HOME is made")
    parser.add_argument("--keep", action="store_true", help="keep GRID_HOME afterwards")
    parser.add_argument(
        "--one-version", action="store_true", help="no second version, diff or gc (quicker)"
    )
    parser.add_argument(
        "--store-level",
        action="store_true",
        help="ingest a synthetic Source straight into a store (no archive, catalog or mount)",
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="grid-million-", dir=args.tmp))
    try:
        with harness.Timer() as total:
            if args.store_level:
                rows = measure_store(args.files, home)
            else:
                rows = measure(args.files, home, args.one_version)
        print(f"\n{args.files:,} files, {total.seconds:.0f} s in all, GRID_HOME {home}")
        print(harness.table(("figure", "grid", "target", "Azure ML"), rows))
    except harness.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
