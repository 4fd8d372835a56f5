"""`grid datastore ...`: create, list, show, ls, cat, diff, delete, gc, verify, download, mount,
schedule."""

from __future__ import annotations

import os
import sys
import time
import types
from datetime import UTC, datetime
from typing import Annotated

import typer

from grid.cli import render
from grid.client import connect
from grid.client.quick import connect_quick
from grid.errors import IntegrityError, Interrupted, UsageError
from grid.settings import Settings, parse_duration, parse_size

app = typer.Typer(
    help="Versioned datasets: create them from folders and files, list, browse and read them.",
    no_args_is_help=False,
    invoke_without_command=True,
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Ref = Annotated[str, typer.Argument(metavar="NAME[:VERSION]", help="Datastore and version.")]


def _warn(message: str) -> None:
    print(f"grid: warning: {render.safe_text(message)}", file=sys.stderr)


@app.callback()
def _default(ctx: typer.Context, as_json: Json = False) -> None:
    """With no command: list the datastores."""
    if ctx.invoked_subcommand is None:
        list_(as_json)


@app.command("list")
def list_(as_json: Json = False) -> None:
    """List datastores: latest version, versions, files, size, status, created."""
    with connect_quick() or connect() as client:
        items = client.list()
        usage = client.usage() if items else None
    from grid.cli import datastores_view as view

    if as_json:
        render.print_json(view.datastores_json(items, usage) if usage else [])
    elif not items or usage is None:
        print("no datastores yet: `grid datastore create FOLDER` makes one", file=sys.stderr)
    else:
        table = view.datastores_table(items, usage)
        if not render.fits(table):
            table = view.datastores_table(items, usage, added=False)
        render.show(table)
        print(view.store_line(usage))


@app.command()
def create(
    source: Annotated[
        str,
        typer.Argument(
            help="Folder or file to store, s3://bucket/prefix, or the http(s) URL of a .zip, "
            ".tar, .tar.gz, .tar.bz2, .tar.xz or .tar.zst archive."
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Datastore name (default: the folder's base name)."),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option("--endpoint-url", help="S3-compatible endpoint of an s3:// SOURCE."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile for an s3:// SOURCE.")
    ] = None,
    keep_root: Annotated[
        bool,
        typer.Option(
            "--keep-root",
            help="Keep an archive's single top-level folder (default: its contents become the "
            "root).",
        ),
    ] = False,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            metavar="SIZE",
            help="Refuse an archive expanding to more (default GRID_ARCHIVE_MAX_SIZE or 4T).",
        ),
    ] = None,
    max_files: Annotated[
        int | None,
        typer.Option(
            "--max-files",
            min=1,
            help="Refuse an archive with more entries (default GRID_ARCHIVE_MAX_FILES or 10M).",
        ),
    ] = None,
    max_ratio: Annotated[
        float | None,
        typer.Option(
            "--max-ratio",
            min=1.0,
            help="Refuse an archive expanding more times its size (default "
            "GRID_ARCHIVE_MAX_RATIO or 250).",
        ),
    ] = None,
    rehash: Annotated[
        bool,
        typer.Option(
            "--rehash",
            help="Read and hash every file, even those unchanged (same size, mtime, inode, "
            "ctime) since this machine last stored them.",
        ),
    ] = False,
    skip_unchanged: Annotated[
        bool,
        typer.Option(
            "--skip-unchanged",
            help="Make no new version if the tree equals the latest version's.",
        ),
    ] = False,
    no_copy: Annotated[
        bool,
        typer.Option(
            "--no-copy",
            help="s3:// SOURCE only: reference the objects where they are, each pinned (by "
            "version id, or ETag and size), instead of copying them; a read of an object "
            "changed or deleted since fails, naming it.",
        ),
    ] = False,
    keep_last: Annotated[
        int | None,
        typer.Option(
            "--keep-last",
            metavar="N",
            min=1,
            help="After success, delete versions older than the N newest and reclaim space.",
        ),
    ] = None,
    team: Annotated[
        str | None,
        typer.Option(
            "--team",
            metavar="TEAM",
            help="Team mode: create the datastore for TEAM (its members read and write it) "
            "instead of yourself; the same as --name TEAM/NAME.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Create the next version of a datastore from a folder, a file, an S3 prefix or an
    archive URL.

    Files unchanged since this machine last stored them are not read again. A create stopped
    by Ctrl-C, kill or a crash is finished by running the same command again."""
    from grid.cli.progress import CreateDisplay
    from grid.client import DatastoreClient

    if team is not None:
        name = f"{team}/{name or DatastoreClient.default_name(source)}"
    label = name or DatastoreClient.default_name(source)
    started = time.monotonic()
    started_at = datetime.now(UTC)
    with connect() as client, CreateDisplay(label) as display:
        version = client.create(
            source,
            name,
            progress=display.update,
            warn=_warn,
            count_totals=display.tty,
            rehash=rehash,
            skip_unchanged=skip_unchanged,
            endpoint_url=endpoint_url,
            profile=profile,
            keep_root=keep_root,
            max_size=parse_size(max_size) if max_size is not None else None,
            max_files=max_files,
            max_ratio=max_ratio,
            no_copy=no_copy,
        )
        if keep_last is not None:
            try:
                removed = client.keep_last(version.datastore, keep_last, warn=_warn)
                freed = client.gc() if removed else None
            except KeyboardInterrupt:
                raise Interrupted(
                    f"retention stopped after {version.ref} was created: nothing was lost; the "
                    "next create with --keep-last, or `grid datastore gc`, finishes it"
                ) from None
            if removed and freed is not None:
                print(
                    f"retention: deleted {', '.join(v.ref for v in removed)}; "
                    f"{render.human_bytes(freed.bytes_reclaimed)} reclaimed",
                    file=sys.stderr,
                )
    if version.finished_at is not None and version.finished_at < started_at:
        print(f"unchanged: {version.ref} already holds this tree; no new version", file=sys.stderr)
        if as_json:
            render.print_json(version)
        return
    if as_json:
        render.print_json(version)
        return
    seconds = time.monotonic() - started
    print(
        f"created {version.ref}: {version.files:,} files, {render.human_bytes(version.size)}, "
        f"{render.human_bytes(version.stored_bytes)} new in the store, {seconds:.1f} s"
    )


@app.command()
def show(ref: Ref, as_json: Json = False) -> None:
    """Show a datastore's versions (or one version, with the runs and sessions that used it)."""
    with connect_quick() or connect() as client:
        name, number = client.parse_ref(ref)
        items = [client.version(name, number)] if number else client.versions(name)
        users = client.version_runs(name, number) if number else []
        usage = client.usage()
    from grid.cli import datastores_view as view

    if as_json:
        shown = [view.version_json(v, usage) for v in items]
        if number:  # the version, and the runs and sessions that used it
            render.print_json({**shown[0], "used_by": render.jsonable(users)})
        else:
            render.print_json(shown)
        return
    render.show(view.versions_table(items, usage))
    line = None if number else view.datastore_line(items[0].datastore if items else name, usage)
    if line:
        print(line)
    if users:
        print()
        from grid.cli import runs_view

        render.show(runs_view.lineage_table(users))


@app.command()
def ls(
    ref: Ref,
    path: Annotated[str, typer.Argument(help="Directory inside the version.")] = "",
    as_json: Json = False,
) -> None:
    """List a directory of a version (default: the latest succeeded one)."""
    with connect_quick() or connect() as client:
        name, number = client.parse_ref(ref)
        items = client.ls(name, number, path)
    if as_json:
        render.print_json(items)
    else:
        render.show(render.files_table(items))


@app.command()
def cat(
    ref: Ref,
    path: Annotated[str, typer.Argument(help="File inside the version.")],
) -> None:
    """Write a file's bytes to stdout, verified against their BLAKE3 ids."""
    with connect() as client:
        name, number = client.parse_ref(ref)
        out = sys.stdout.buffer  # a failed write (EPIPE, ENOSPC) is handled by grid.cli.app
        for block in client.iter_bytes(name, number, path):
            out.write(block)
        out.flush()


@app.command()
def delete(
    ref: Ref,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete one version (NAME:VERSION) or a whole datastore (NAME)."""
    with connect() as client:
        name, number = client.parse_ref(ref)
        doomed = [client.version(name, number)] if number else client.versions(name)
        what = f"{name}:{number}" if number else f"datastore {name} ({len(doomed)} versions)"
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"refusing to delete {what} without confirmation: pass --yes",
                    rule="destructive commands need --yes when not on a terminal",
                )
            if not typer.confirm(f"Delete {what}?", default=False):
                print("nothing deleted", file=sys.stderr)
                raise typer.Exit(1)
        removed = client.delete(name, number)
    print(f"deleted {', '.join(v.ref for v in removed) or what}")


@app.command()
def diff(
    a: Annotated[str, typer.Argument(metavar="NAME:A", help="The older version.")],
    b: Annotated[str, typer.Argument(metavar="NAME:B", help="The newer version.")],
    as_json: Json = False,
) -> None:
    """Paths added, removed and modified between two versions of a datastore."""
    with connect() as client:
        name, va = client.parse_ref(a)
        other, vb = client.parse_ref(b)
        if other != name:
            raise UsageError(
                f"{a} and {b} belong to different datastores",
                rule="diff compares two versions of one datastore",
            )
        report = client.diff(name, va, vb)
    if as_json:
        render.print_json(
            {
                "datastore": name,
                "a": report.a,
                "b": report.b,
                "added": report.added,
                "removed": report.removed,
                "modified": report.modified,
            }
        )
        return
    for sign, changes in (("+", report.added), ("-", report.removed), ("M", report.modified)):
        for c in changes:
            size = c.new_size if c.new_size is not None else c.old_size
            shown = render.safe_name(c.path) + ("/" if c.kind == "dir" else "")
            print(f"{sign} {shown}  {render.human_bytes(size or 0)}")
    print(
        f"{name}:{report.a} -> {name}:{report.b}: {len(report.added):,} added "
        f"({render.human_bytes(report.added_bytes)}), {len(report.removed):,} removed "
        f"({render.human_bytes(report.removed_bytes)}), {len(report.modified):,} modified"
    )


@app.command()
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be reclaimed, change nothing.")
    ] = False,
    grace: Annotated[
        str | None,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="Keep unreferenced objects younger than this (default GRID_GC_GRACE, 24h); "
            "0 reclaims at once: only when no create runs that this installation cannot see.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Reclaim the space of deleted versions: delete packs no version needs, repack those that
    are mostly unneeded. Safe while creates run. Only objects this installation wrote, older
    than the grace period, are ever deleted."""
    seconds = parse_duration(grace) if grace is not None else None
    with connect() as client:
        try:
            report = client.gc(dry_run=dry_run, grace=seconds)
        except KeyboardInterrupt:
            raise Interrupted("gc stopped; nothing was lost, run gc again") from None
    if as_json:
        render.print_json(report)
        return
    verb = "would reclaim" if dry_run else "reclaimed"
    print(
        f"gc: {verb} {render.human_bytes(report.bytes_reclaimed)} "
        f"({report.packs_deleted:,} packs deleted, {report.packs_repacked:,} repacked, "
        f"{render.human_bytes(report.bytes_copied)} copied); "
        f"{report.live_packs:,} packs, {render.human_bytes(report.live_bytes)} in use"
    )
    if report.kept_young:
        print(
            f"gc: kept {report.kept_young:,} unreferenced objects "
            f"({render.human_bytes(report.kept_young_bytes)}) younger than the grace period "
            f"({grace or os.environ.get('GRID_GC_GRACE') or '24h'}); a later gc reclaims them, "
            "or --grace 0 now if no create runs elsewhere"
        )
    if report.kept_for_readers:
        print(
            f"gc: kept {report.kept_for_readers:,} replaced objects that readers opened before "
            "the repack (mounts, open files) may still use; a gc after they close deletes them"
        )
    if report.kept_unknown:
        print(
            f"gc: kept {report.kept_unknown:,} objects "
            f"({render.human_bytes(report.kept_unknown_bytes)}) this installation did not "
            "write: never deleted by it"
        )


@app.command()
def verify(ref: Ref, as_json: Json = False) -> None:
    """Re-read every blob of a version and check it against its BLAKE3 id; exit 6 on damage."""
    with connect() as client:
        name, number = client.parse_ref(ref)
        report = client.verify(name, number)
    if as_json:
        render.print_json(
            {
                "version": report.version.ref,
                "files": report.files,
                "bytes": report.bytes,
                "damaged": report.damaged,
            }
        )
    else:
        for path, problem in sorted(report.damaged.items()):
            print(f"DAMAGED {render.safe_name(path)}: {render.safe_text(problem)}")
    if not report.ok:
        raise IntegrityError(f"{len(report.damaged)} damaged file(s) in {report.version.ref}")
    if not as_json:
        print(
            f"verified {report.version.ref}: {report.files:,} files, "
            f"{render.human_bytes(report.bytes)}, all intact"
        )


@app.command()
def download(
    ref: Ref,
    dest: Annotated[str, typer.Argument(help="Folder to write the version's tree into.")],
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty DEST.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip files already complete in DEST.")
    ] = False,
) -> None:
    """Materialise a version as plain files (modes, mtimes and symlinks kept); resumable."""
    with connect() as client:
        name, number = client.parse_ref(ref)
        try:
            report = client.download(name, number, dest, force=force, resume=resume)
        except KeyboardInterrupt:
            raise Interrupted(
                f"download of {name}:{number or 'latest'} stopped; {dest} holds a partial "
                "download: run it again with --resume"
            ) from None
    print(
        f"downloaded {report.version.ref} to {dest}: {report.files:,} files written, "
        f"{report.skipped:,} already there, {render.human_bytes(report.bytes)}"
    )


@app.command()
def mount(
    ref: Ref,
    mountpoint: Annotated[
        str | None,
        typer.Argument(
            help="Empty folder (default: /datastores/NAME/VERSION as root, else ~/datastores/...)."
        ),
    ] = None,
    foreground: Annotated[bool, typer.Option("--foreground", help="Stay attached.")] = False,
    cache_size: Annotated[
        str | None,
        typer.Option(
            "--cache-size",
            metavar="SIZE",
            help="Bound of the on-disk blob cache shared by all mounts (e.g. 10G; 0 = none; "
            "default $GRID_CACHE_SIZE, none for a local object directory).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, max=64, help="Serving processes (default: one per 2 CPUs, up to 4)."
        ),
    ] = None,
) -> None:
    """Mount a succeeded version read-only (default: the latest); returns once it is ready."""
    limit = parse_size(cache_size) if cache_size is not None else None
    runner = _mount_runner()
    with connect_quick(cache_size=limit) or connect() as client:
        name, number = client.parse_ref(ref)
        snap = client.snapshot(name, number)  # resolves and validates before forking
        version = snap.version.number
        snap.close()
    target = os.path.abspath(mountpoint or runner.default_mountpoint(name, version))
    home = Settings.from_env().home
    log_path = os.path.join(home, "logs", f"mount-{name}-{version}.log")
    if not foreground:
        print(f"mounting {name}:{version} at {target}", file=sys.stderr)
    runner.mount(
        home,
        name,
        version,
        target,
        foreground=foreground,
        log_path=log_path,
        cache_size=limit,
        workers=workers,
    )
    if not foreground:
        print(target)


@app.command()
def unmount(
    mountpoint: Annotated[str | None, typer.Argument(help="A grid mountpoint.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every grid mount on this machine.")] = False,
) -> None:
    """Unmount a datastore (also one whose mount process died)."""
    runner = _mount_runner()
    if all_:  # every mount is tried; failures are named together at the end (exit 4)
        runner.unmount_all(lambda target: print(f"unmounted {render.safe_text(target)}"))
        return
    if not mountpoint:
        raise UsageError("give a MOUNTPOINT or --all", rule="unmount MOUNTPOINT | --all")
    target = os.path.abspath(mountpoint)
    runner.unmount(target)
    print(f"unmounted {render.safe_text(target)}")


def _mount_runner() -> types.ModuleType:
    from grid.mount import runner  # imported only by the commands that mount

    return runner


@app.command()
def schedule(
    source: Annotated[str, typer.Argument(help="Folder or file to store on each run.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Datastore name.")],
    every: Annotated[
        str,
        typer.Option("--every", help="5m, 10m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d."),
    ] = "1h",
    skip_unchanged: Annotated[
        bool, typer.Option("--skip-unchanged", help="No new version when nothing changed.")
    ] = False,
    keep_last: Annotated[
        int | None,
        typer.Option("--keep-last", metavar="N", min=1, help="Keep only the N newest versions."),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option("--endpoint-url", help="S3-compatible endpoint of an s3:// SOURCE."),
    ] = None,
) -> None:
    """Create a version of SOURCE on a timer, replacing NAME's schedule. Logged in, an archive
    URL or s3:// prefix is kept by the server and run by its workers (a version only when the
    source changed); anything else is a crontab entry on this machine."""
    from grid.cli import schedule as schedules_

    with connect() as client:
        _, number = client.parse_ref(name)  # the name rule, now rather than at the first run
        if number is not None:
            raise UsageError(
                f"--name {name!r} names a version: a schedule makes new versions of a datastore",
                rule="--name takes NAME (or TEAM/NAME), without :VERSION",
            )
        if client.keeps_schedules and client.fetchable(source):
            kept = client.schedule(
                source, name, schedules_.seconds(every), keep_last, endpoint_url=endpoint_url
            )
            print(
                f"scheduled {render.safe_name(kept.name)} on the server: every {every} "
                f"from {render.safe_text(kept.source)} (first turn now; `grid job list` "
                "shows the turns)"
            )
            return
    extra = ["--skip-unchanged"] if skip_unchanged else []
    if keep_last is not None:
        extra += ["--keep-last", str(keep_last)]
    if endpoint_url is not None:
        extra += ["--endpoint-url", endpoint_url]
    s = schedules_.install(Settings.from_env().home, source, name, every, extra)
    print(f"scheduled {name}: {s.cron}  (log: {s.log})")
    if schedules_.cron_running() is False:
        _warn(
            "no cron daemon is running on this machine, so this schedule will not fire until "
            "one starts: `service cron start` (as root; `systemctl enable --now cron` with "
            "systemd, crond on Red Hat)"
        )


@app.command()
def unschedule(name: Annotated[str, typer.Argument(help="Datastore name.")]) -> None:
    """Remove a datastore's schedule (the server's, when logged in and it keeps one; else
    the crontab entry)."""
    from grid.cli import schedule as schedules_

    with connect() as client:
        if client.keeps_schedules and any(s.name == name for s in client.schedules()):
            client.unschedule(name)
            print(f"unscheduled {render.safe_name(name)} on the server")
            return
    schedules_.remove(name)
    print(f"unscheduled {render.safe_name(name)}")


@app.command("schedules")
def list_schedules(as_json: Json = False) -> None:
    """The scheduled creates: the server's (when logged in), then those in your crontab."""
    from grid.cli import schedule as schedules_

    with connect() as client:
        kept = client.schedules() if client.keeps_schedules else []
    items = schedules_.schedules() if schedules_.has_crontab() else []
    if as_json:  # the server's first, each with its source and interval
        render.print_json([*kept, *items])
    elif not items and not kept:
        print(
            "no schedules: `grid datastore schedule FOLDER --name NAME` adds one", file=sys.stderr
        )
    else:
        for k in kept:
            print("\t".join(render.safe_text(x) for x in schedules_.server_line(k)))
        for s in items:
            print(f"{s.name}\t{s.cron}\t{s.log}")
