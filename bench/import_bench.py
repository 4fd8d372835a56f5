#!/usr/bin/env python3
"""Benchmark the remote ways in: a datastore from an archive URL, and a create into S3 storage.

Archive (``small``: 50,000 files of 2-200 KiB, 2.2 GB, as one .tar.gz made by
``tar cf - small | gzip -1``, kept beside the dataset), served from 127.0.0.1 by
bench/http_serve.py (Range support, sendfile), the archive in the page cache:

  curl > /dev/null           the download alone (a limit)
  curl | gzip -dc            download and inflate (a limit: what any importer must do)
  curl | tar xz -C DIR       the peer: extract into a fresh folder on the same disk (no fsync)
  ... && sync                the same, made durable as grid's packs are
  grid create URL            ``grid datastore create URL --name small`` into a fresh GRID_HOME
                             (fsync, and with GRID_FSYNC=0)

S3 (the first ``--s3-folders`` folders of ``small``, 10,000 files by default: ``aws s3 sync``
manages ~250 files/s against moto), moto in server mode as a separate process on 127.0.0.1,
a fresh bucket per run:

  aws s3 sync DIR s3://B/x   the peer (awscli, one object per file)
  grid create (S3 storage)   ``GRID_STORAGE_URL=s3://B/p grid datastore create DIR``

and the other way, the same files as objects under s3://B/x (filled once, untimed):

  aws s3 sync s3://B/x DIR   the peer: download into a fresh folder
  grid create s3://B/x       import into a fresh GRID_HOME (local storage)

"x peer" is the peer's seconds divided by the row's (above 1: faster than the peer). With
``--repeat N`` every row runs N times, round-robin, and the table shows medians.

    python bench/import_bench.py
    python bench/import_bench.py --quick          # 3 folders (1,500 files) for both parts
    python bench/import_bench.py --only archive   # or: --only s3
    python bench/import_bench.py --zip            # also a .zip (zip -1) beside curl + unzip

Needs curl, tar, gzip (Debian) and awscli (``pip install awscli`` anywhere on PATH); moto
comes with the test extras (bench/setup.sh). Scratch folders and homes live under --base and
are deleted after each run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from create_bench import (  # bench/ is not a package
    MB,
    REPO_ROOT,
    BenchError,
    ensure_dataset,
    grid_command,
    q,
    run_quiet,
    run_timed,
    scratch,
    tree_size,
    warm_cache,
)

PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
SERVE = Path(__file__).resolve().parent / "http_serve.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise BenchError(f"server for {url} did not start") from None
            time.sleep(0.1)


def subset(src: Path, folders: int | None, base: Path) -> Path:
    """``src`` itself, or a copy of its first ``folders`` folders."""
    if folders is None:
        return src
    out = base / f"{src.name}-{folders}"
    if not out.exists():
        out.mkdir()
        for name in sorted(os.listdir(src))[:folders]:
            shutil.copytree(src / name, out / name, symlinks=True)
    return out


def make_archive(src: Path) -> Path:
    archive = src.parent / f"{src.name}.tar.gz"
    if not archive.exists():
        print(f"making {archive} (tar | gzip -1)", flush=True)
        tmp = archive.with_suffix(".tmp")
        subprocess.run(
            f"tar cf - -C {q(src.parent)} {q(src.name)} | gzip -1 > {q(tmp)}",
            shell=True,
            check=True,
        )
        tmp.rename(archive)
    return archive


def make_zip(src: Path) -> Path:
    archive = src.parent / f"{src.name}.zip"
    if not archive.exists():
        print(f"making {archive} (zip -1)", flush=True)
        tmp = src.parent / f"{src.name}.tmp.zip"
        subprocess.run(["zip", "-q", "-1", "-r", str(tmp), src.name], cwd=src.parent, check=True)
        tmp.rename(archive)
    return archive


def grid_env(home: Path, fsync: bool, **extra: str) -> dict[str, str]:
    env = {**os.environ, "GRID_HOME": str(home), **extra}
    env.pop("GRID_FSYNC", None)
    if not fsync:
        env["GRID_FSYNC"] = "0"
    return env


def grid_job(source: str, base: Path, fsync: bool = True, env=dict):
    """A row's job: ``grid datastore create SOURCE`` into a fresh GRID_HOME; ``env()`` adds
    to its environment (called per run)."""

    def job() -> dict:
        home = scratch("grid-home", base)
        try:
            argv = [*grid_command(), "datastore", "create", source, "--name", "bench"]
            return run_timed(argv, {**grid_env(home, fsync), **env()})
        finally:
            shutil.rmtree(home, ignore_errors=True)

    return job


def shell_job(base: Path, command, env: dict[str, str] | None = None):
    """A row's job: the shell ``command(DIR)`` with DIR a fresh folder, deleted after."""

    def job() -> dict:
        out = scratch("out", base)
        try:
            return run_timed(command(out), env, shell=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return job


def zip_rows(url: str, base: Path) -> list[tuple[str, str, object]]:
    def unzip(out: Path) -> str:
        zipped = q(out / "a.zip")
        return f"curl -sf -o {zipped} {q(url)} && unzip -q {zipped} -d {q(out / 'x')}"

    return [
        ("curl -o a.zip && unzip", "peer", shell_job(base, unzip)),
        ("grid create URL (Range reads)", "ours", grid_job(url, base)),
    ]


def archive_rows(url: str, base: Path) -> list[tuple[str, str, object]]:
    def limit(cmd: str):
        return lambda: run_timed(cmd, shell=True)

    extract = f"curl -sf {q(url)} | tar xz -C "
    return [
        ("curl > /dev/null", "limit", limit(f"curl -sf {q(url)} > /dev/null")),
        ("curl | gzip -dc", "limit", limit(f"curl -sf {q(url)} | gzip -dc > /dev/null")),
        ("curl | tar xz", "peer", shell_job(base, lambda out: extract + q(out))),
        (
            "curl | tar xz && sync",
            "peer",
            shell_job(base, lambda out: f"{extract}{q(out)} && sync"),
        ),
        ("grid create URL (fsync)", "ours", grid_job(url, base, fsync=True)),
        ("grid create URL (no fsync)", "ours", grid_job(url, base, fsync=False)),
    ]


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }


def new_bucket(env: dict[str, str]) -> str:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    run_quiet(["aws", "s3", "mb", f"s3://{name}"], env)
    return name


def s3_import_rows(url: str, endpoint: str, base: Path) -> list[tuple[str, str, object]]:
    """Rows that read the objects under ``url`` (an s3:// prefix) onto this machine."""
    env = aws_env(endpoint)

    def aws_down(out: Path) -> str:
        return f"aws s3 sync {q(url)} {q(out)} --only-show-errors"

    return [
        ("aws s3 sync s3://B/x DIR", "peer", shell_job(base, aws_down, env)),
        ("grid create s3://B/x (local storage)", "ours", grid_job(url, base, env=lambda: env)),
    ]


def s3_rows(src: Path, endpoint: str, base: Path) -> list[tuple[str, str, object]]:
    env = aws_env(endpoint)

    def aws_sync() -> dict:
        argv = ["aws", "s3", "sync", str(src), f"s3://{new_bucket(env)}/x", "--only-show-errors"]
        return run_timed(argv, env)

    def storage() -> dict[str, str]:  # a fresh bucket per run
        return {**env, "GRID_STORAGE_URL": f"s3://{new_bucket(env)}/p"}

    return [
        ("aws s3 sync", "peer", aws_sync),
        ("grid create (S3 storage)", "ours", grid_job(str(src), base, env=storage)),
    ]


def measure(rows, repeat: int, warm) -> list[dict]:
    results: dict[str, list[dict]] = {label: [] for label, _, _ in rows}
    for _ in range(repeat):
        for label, _, job in rows:
            warm()
            subprocess.run(["sync"], check=True)
            results[label].append(job())
    out = []
    for label, kind, _ in rows:
        runs = results[label]
        out.append(
            {
                "label": label,
                "kind": kind,
                "seconds": statistics.median(r["seconds"] for r in runs),
                "rss": max(r["peak_rss_mib"] for r in runs),
            }
        )
    return out


def table(title: str, rows: list[dict], files: int, size: int, peer: str) -> str:
    peer_s = next(r["seconds"] for r in rows if r["label"] == peer)
    lines = [
        f"## {title}: {files:,} files, {size / MB:,.1f} MB",
        "",
        "| | seconds | files/s | MB/s | x peer | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s, label = r["seconds"], r["label"].replace("|", "\\|")
        lines.append(
            f"| {label} ({r['kind']}) | {s:.2f} | {files / s:,.0f} | {size / MB / s:,.0f} "
            f"| {peer_s / s:.2f} | {r['rss']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/bench-data"))
    p.add_argument("--base", type=Path, default=Path("/tmp"))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--only", choices=["archive", "s3"])
    p.add_argument("--s3-folders", type=int, default=20)
    p.add_argument("--zip", action="store_true", help="also a .zip of the same tree")
    p.add_argument("--quick", action="store_true", help="3 folders of small for both parts")
    args = p.parse_args(argv)
    for tool in ("curl", "tar", "gzip") + (("aws",) if args.only != "archive" else ()):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is missing (see this script's docstring)")
    small = ensure_dataset(args.root, "small")
    procs: list[subprocess.Popen] = []
    try:
        if args.only in (None, "archive"):
            src = subset(small, 3 if args.quick else None, args.root)
            archive = make_archive(src)
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, str(SERVE), str(src.parent), str(port)]))
            url = f"http://127.0.0.1:{port}/{archive.name}"
            wait_http(url, procs[-1])
            files, size = tree_size(src)
            rows = measure(
                archive_rows(url, args.base),
                args.repeat,
                lambda: subprocess.run(["cat", str(archive)], stdout=subprocess.DEVNULL),
            )
            title = f"Archive import ({archive.stat().st_size / MB:,.0f} MB .tar.gz)"
            print(table(title, rows, files, size, "curl | tar xz"), flush=True)
            if args.zip:
                zipped = make_zip(src)
                rows = measure(
                    zip_rows(f"http://127.0.0.1:{port}/{zipped.name}", args.base),
                    args.repeat,
                    lambda: subprocess.run(["cat", str(zipped)], stdout=subprocess.DEVNULL),
                )
                title = f"Zip import ({zipped.stat().st_size / MB:,.0f} MB .zip, served with Range)"
                print()
                print(table(title, rows, files, size, "curl -o a.zip && unzip"), flush=True)
        if args.only in (None, "s3"):
            src = subset(small, 3 if args.quick else args.s3_folders, args.root)
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [str(PYTHON), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            endpoint = f"http://127.0.0.1:{port}"
            wait_http(endpoint, procs[-1])
            files, size = tree_size(src)
            rows = measure(s3_rows(src, endpoint, args.base), args.repeat, lambda: warm_cache(src))
            print()
            print(table("Create into S3 (moto)", rows, files, size, "aws s3 sync"), flush=True)
            filled = f"s3://{new_bucket(aws_env(endpoint))}/x"
            sync = ["aws", "s3", "sync", str(src), filled, "--only-show-errors"]
            run_quiet(sync, aws_env(endpoint))
            rows = measure(s3_import_rows(filled, endpoint, args.base), args.repeat, lambda: None)
            print()
            title = "Create from S3 (moto): the same files as objects"
            print(table(title, rows, files, size, "aws s3 sync s3://B/x DIR"), flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"import_bench: {exc}", file=sys.stderr)
        sys.exit(1)
