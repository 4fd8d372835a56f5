"""``RemoteClient``: the same operations as ``grid.Client``, on a team-mode server.

The work stays on this machine as in embedded mode (chunking, hashing, compressing, packing,
reading and verifying blobs, the blob cache); the catalog is the server's, and bytes move
between this machine and the server's object store with the URLs it hands out. ``NAME`` is the
caller's own datastore, ``TEAM/NAME`` one of a team they belong to. Local state (blob index,
file state, cache) is kept per server and owner under ``GRID_HOME/remote``.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import dataclasses
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from grid.client.api_session import ApiSession
from grid.client.remote_catalog import RemoteCatalog
from grid.client.remote_runs import RemoteRuns
from grid.client.service_client import REMOTE_CACHE, ServiceClient, file_tag
from grid.client.wire import datastore_from, job_from, schedule_from, version_from
from grid.errors import Interrupted, StorageError, UsageError, rebuild, storage_error
from grid.records import DatastoreInfo, JobInfo, ScheduleInfo, VersionInfo
from grid.reports import CreateProgress, GcReport, Progress, UsageReport
from grid.service.names import split_owner
from grid.settings import Settings
from grid.tree import Warn

if TYPE_CHECKING:
    from grid.service.context import Context
    from grid.service.runs import RunPort
    from grid.store import Store

_SYNC_PAGE = 2000


class RemoteClient(ServiceClient):
    """Datastores on the server at ``url``, as the holder of ``api_key``.

    Args:
        url: the server, ``http(s)://host:port``.
        api_key: the caller's key (``grid_...``).
        home: where local state lives (default ``$GRID_HOME`` or ``~/.grid``).
        cache_size: bytes of verified blobs kept on disk for random reads (default
            ``GRID_CACHE_SIZE``, else 10 GiB).
    """

    keeps_schedules = True

    def __init__(
        self, url: str, api_key: str, home: str | None = None, *, cache_size: int | None = None
    ) -> None:
        settings = Settings.from_env()
        self._settings = settings
        self._limit_settings = (
            settings.archive_max_size,
            settings.archive_max_files,
            settings.archive_max_ratio,
        )
        self.home = os.path.abspath(home or settings.home)
        self._cache_size = cache_size if cache_size is not None else settings.cache_size
        self.api = ApiSession(url, api_key)
        self.url = self.api.url
        self._root = os.path.join(self.home, "remote", file_tag(self.url.split("://", 1)[-1]))
        self._me: str | None = None
        self._contexts: dict[str, Context] = {}
        self._runs: RemoteRuns | None = None

    @property
    def username(self) -> str:
        """The caller, as the server knows them."""
        if self._me is None:
            self._me = str(self.api.call("GET", "/v1/whoami")["username"])
        return self._me

    @property
    def runs(self) -> RunPort:
        """The caller's runs and sessions, kept by the server."""
        if self._runs is None:
            self._runs = RemoteRuns(self.api, self.username)
        return self._runs

    def close(self) -> None:
        for ctx in self._contexts.values():
            with contextlib.suppress(Exception):
                ctx.close()
        self._contexts.clear()
        self.api.close()

    def _open(self, name: str | None) -> tuple[Context, str | None, str]:
        owner, plain = self.username, name
        if name is not None:
            given, plain = split_owner(name)
            owner = given or owner
        ctx = self._contexts.get(owner)
        if ctx is None:
            ctx = self._contexts[owner] = self._context(owner)
        return ctx, plain, "" if owner == self.username else f"{owner}/"

    def _context(self, owner: str) -> Context:
        from grid.client.presigned import PresignedObjects
        from grid.service.context import Context
        from grid.store import Store

        folder = os.path.join(self._root, owner)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"create {folder}") from exc
        s = self._settings
        store = Store(
            PresignedObjects(self.api, owner),
            os.path.join(folder, "index.sqlite"),
            os.path.join(folder, "cache"),
            cache_limit=REMOTE_CACHE if self._cache_size is None else self._cache_size,
            state_path=os.path.join(folder, "state.sqlite"),
        )
        return Context(
            RemoteCatalog(self.api, owner),
            store,
            os.path.join(self.home, "tmp"),
            True,  # archive URLs are fetched by this machine, which runs as the user
            storage=f"{self.url} ({owner})",
            home=self.home,
            host_id=s.host_id,
            lease_seconds=s.lease_seconds,
            gc_grace=s.gc_grace,
            server_checked=True,
            on_held=lambda: self._sync_packs(owner, store),
        )

    def _sync_packs(self, owner: str, store: Store) -> None:
        """Learn the packs ``owner`` got since the last sync (their trailers say which blobs
        they hold), so that only blobs the owner lacks are uploaded, and forget those gc
        dropped since. Run once a create holds its version: gc drops nothing then."""
        cursor_path = os.path.join(self._root, owner, "packs.cursor")
        try:
            with open(cursor_path) as f:
                fields = f.read().split()
            cursor, gone = int(fields[0]), int(fields[1]) if len(fields) > 1 else 0
        except (OSError, ValueError, IndexError):
            cursor, gone = 0, 0
        while True:
            page = self.api.call(
                "GET",
                f"/v1/owners/{owner}/packs?after={cursor}&limit={_SYNC_PAGE}&gone_after={gone}",
            )
            packs, dropped = page["packs"], page.get("gone", [])
            for p in dropped:
                store.index.forget_pack(p["pack_id"])
            store.index.learn_packs(
                [(p["pack_id"], int(p["size"]), base64.b64decode(p["trailer"])) for p in packs]
            )
            cursor = max([cursor, *(int(p["seq"]) for p in packs)])
            gone = max([gone, *(int(p["seq"]) for p in dropped)])
            if len(packs) < _SYNC_PAGE and len(dropped) < _SYNC_PAGE:
                break
        with contextlib.suppress(OSError), open(f"{cursor_path}.tmp", "w") as f:
            f.write(f"{cursor} {gone}")
        with contextlib.suppress(OSError):
            os.replace(f"{cursor_path}.tmp", cursor_path)

    def create(
        self,
        source: str,
        name: str | None = None,
        *,
        progress: Progress | None = None,
        warn: Warn | None = None,
        count_totals: bool = False,
        rehash: bool = False,
        skip_unchanged: bool = False,
        endpoint_url: str | None = None,
        profile: str | None = None,
        keep_root: bool = False,
        max_size: int | None = None,
        max_files: int | None = None,
        max_ratio: float | None = None,
        no_copy: bool = False,
    ) -> VersionInfo:
        """As ``grid.Client.create``. An archive URL is fetched by the server, not through this
        machine, and so is an ``s3://`` prefix in a bucket the server's operator opened to
        imports (the server reads it with its own credentials); any other ``s3://`` prefix is
        read here with this machine's (``endpoint_url``, ``profile``), as embedded."""
        from grid.sources.archive import is_url

        if no_copy:
            raise UsageError(
                "--no-copy is not available logged in to a server yet: the version would "
                "reference objects the server cannot check",
                rule="--no-copy makes embedded versions of s3:// prefixes",
            )
        if is_url(source) or source.startswith("s3://"):
            body = {
                "source": source,
                "keep_root": keep_root,
                "skip_unchanged": skip_unchanged,
                "endpoint_url": endpoint_url,
                "max_size": max_size,
                "max_files": max_files,
                "max_ratio": max_ratio,
            }
            try:
                return self._import(source, name, body, progress, warn)
            except UsageError as exc:
                if not exc.attrs.get("read_here"):
                    raise
                if warn is not None:
                    warn(f"{exc.message}: reading it from this machine")
        return super().create(
            source,
            name,
            progress=progress,
            warn=warn,
            count_totals=count_totals,
            rehash=rehash,
            skip_unchanged=skip_unchanged,
            endpoint_url=endpoint_url,
            profile=profile,
            keep_root=keep_root,
            max_size=max_size,
            max_files=max_files,
            max_ratio=max_ratio,
        )

    def _import(
        self,
        source: str,
        name: str | None,
        body: dict[str, Any],
        progress: Progress | None,
        warn: Warn | None,
    ) -> VersionInfo:
        """Have the server make the version from ``source``, following its progress."""
        ctx, plain, prefix = self._open(name or self.default_name(source))
        assert isinstance(ctx.catalog, RemoteCatalog) and plain is not None
        path = f"/v1/datastores/{quote(ctx.catalog.owner, safe='')}/{quote(plain, safe='')}/imports"
        try:
            for event in self.api.stream("POST", path, body):
                if "progress" in event and progress is not None:
                    progress(CreateProgress(**event["progress"]))
                elif "warning" in event and warn is not None:
                    warn(str(event["warning"]))
                elif "version" in event:
                    return self._shown(version_from(event["version"]), prefix)
                elif "error" in event:
                    problem = event["error"]
                    raise rebuild(problem["code"], problem["detail"], problem.get("attrs") or {})
        except KeyboardInterrupt:
            raise Interrupted(
                f"stopped following the import; the server goes on with it: `grid datastore "
                f"show {prefix}{plain}` shows how far it is"
            ) from None
        raise StorageError("the server's answer to the import ended early; run the create again")

    def list(self) -> builtins.list[DatastoreInfo]:
        """Every datastore the caller can see: their own by name, their teams' as
        ``TEAM/NAME``."""
        me = self.username
        out = []
        for row in self.api.call("GET", "/v1/datastores"):
            owner, data = row["owner"], row["datastore"]
            out.append(datastore_from(data, None if owner == me else f"{owner}/{data['name']}"))
        return out

    def jobs(self, limit: int = 1000) -> builtins.list[JobInfo]:
        """The newest jobs of the caller and their teams, newest first."""
        return [job_from(j) for j in self.api.call("GET", f"/v1/jobs?limit={int(limit)}")]

    def job(self, job_id: int) -> JobInfo:
        """One job of the caller or their teams."""
        return job_from(self.api.call("GET", f"/v1/jobs/{int(job_id)}"))

    def cancel_job(self, job_id: int) -> JobInfo:
        """Cancel a job of the caller or their teams that has not ended."""
        path = f"/v1/jobs/{int(job_id)}/cancel"
        return job_from(self.api.call("POST", path, idempotent=True))

    def _schedule_path(self, name: str) -> str:
        owner, plain = split_owner(name)
        where = quote(owner or self.username, safe="")
        return f"/v1/datastores/{where}/{quote(plain, safe='')}/schedule"

    def schedule(
        self,
        source: str,
        name: str,
        every_seconds: int,
        keep_last: int | None = None,
        *,
        endpoint_url: str | None = None,
    ) -> ScheduleInfo:
        """Have the server re-import ``source`` into ``name`` (``TEAM/NAME`` for a team's)
        every ``every_seconds``; a version only when the source changed."""
        body = {
            "source": source,
            "every_seconds": every_seconds,
            "keep_last": keep_last,
            "endpoint_url": endpoint_url,
            "max_size": self._limits.max_bytes,
            "max_files": self._limits.max_entries,
            "max_ratio": self._limits.max_ratio,
        }
        data = self.api.call("PUT", self._schedule_path(name), body, idempotent=True)
        return schedule_from(data, name)

    def unschedule(self, name: str) -> None:
        """Remove the server's schedule of ``name``."""
        self.api.call("DELETE", self._schedule_path(name), idempotent=True)

    def schedules(self) -> builtins.list[ScheduleInfo]:
        """The schedules of the caller (by name) and their teams (``TEAM/NAME``)."""
        me = self.username
        return [
            schedule_from(d, None if d["owner"] == me else f"{d['owner']}/{d['name']}")
            for d in self.api.call("GET", "/v1/schedules")
        ]

    def gc(
        self, *, dry_run: bool = False, repack_below: float = 0.5, grace: float | None = None
    ) -> GcReport:
        """Have the server delete the packs no version of the caller or their teams needs
        (older than ``grace`` seconds, default ``GRID_GC_GRACE``); no repacking in team mode."""
        who = self.api.call("GET", "/v1/whoami")
        body = {"dry_run": dry_run, "grace": self._settings.gc_grace if grace is None else grace}
        total = GcReport()
        for owner in [who["username"], *who["teams"]]:
            part = self.api.call("POST", f"/v1/owners/{owner}/gc", body)
            for f in dataclasses.fields(GcReport):
                setattr(total, f.name, getattr(total, f.name) + int(part.get(f.name, 0)))
        return total

    def usage(self) -> UsageReport:
        """Each owner's usage (the caller's, then their teams', as ``TEAM/NAME``) as the
        server measures it, summed."""
        who = self.api.call("GET", "/v1/whoami")
        total = UsageReport()
        for owner in [who["username"], *who["teams"]]:
            part = UsageReport.from_dict(self.api.call("GET", f"/v1/owners/{owner}/usage"))
            prefix = "" if owner == who["username"] else f"{owner}/"
            for d in part.datastores:
                total.datastores.append(dataclasses.replace(d, name=prefix + d.name))
            for v in part.versions:
                total.versions.append(dataclasses.replace(v, datastore=prefix + v.datastore))
            for f in ("stored_bytes", "packs", "manifests", "referenced_bytes"):
                setattr(total, f, getattr(total, f) + getattr(part, f))
        return total
