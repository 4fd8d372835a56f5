"""One owner's catalog on a team-mode server, as the service layer asks for it
(``grid.service.catalog_port``): every call is one request.

A version becomes ``succeeded`` only by the server's commit, which checks the uploaded packs
and manifest first; the client's create asks for it when it would mark the version succeeded.
Every request of a create may be tried again (a server behind a load balancer stopped): the
server answers a repeated one as it answered the first.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from grid.client.api_session import ApiSession
from grid.client.wire import datastore_from, version_from
from grid.errors import ConflictError, DatastoreNotFoundError, NotFoundError, StorageError
from grid.records import SUCCEEDED, UNFINISHED, DatastoreInfo, Lease, VersionInfo
from grid.service.catalog_port import Stopped

_KEEP_SUCCEEDED = 2.0
_DISCARD_BACKOFF = (0.5, 2.0)  # seconds before a lost discard is checked and sent again


def _holder(lease: Lease) -> dict[str, Any]:
    return {"host": lease.host, "pid": lease.pid, "lease_seconds": lease.seconds}


class RemoteCatalog:
    """The datastores of ``owner`` through ``api``."""

    def __init__(self, api: ApiSession, owner: str) -> None:
        self._api = api
        self.owner = owner
        self._base = f"/v1/datastores/{quote(owner, safe='')}"
        self._succeeded: dict[tuple[str, int], tuple[VersionInfo, float]] = {}
        self._made: dict[tuple[str, int], str] = {}  # this client's versions: manifest ids

    def _ds(self, name: str) -> str:
        return f"{self._base}/{quote(name, safe='')}"

    @property
    def catalog_id(self) -> str:
        return f"server:{self._api.url}"

    def close(self) -> None:
        """Nothing to release: the session belongs to the client."""

    # -- writes ----------------------------------------------------------------------------
    def new_version(self, name: str, source: str, manifest_id: str, lease: Lease) -> VersionInfo:
        body = {"source": source, "manifest_id": manifest_id, **_holder(lease)}
        answer = self._api.call("POST", f"{self._ds(name)}/versions", body, idempotent=True)
        return self._remember(version_from(answer))

    def _remember(self, v: VersionInfo) -> VersionInfo:
        self._made[(v.datastore, v.number)] = v.manifest_id
        return v

    def resume_version(
        self, name: str, source: str, manifest_id: str, lease: Lease, stopped: Stopped
    ) -> VersionInfo | None:
        """Take over the newest stopped version of ``name`` from ``source``; the server does
        it only if nobody else did meanwhile."""
        try:
            candidates = self.versions(name)
        except DatastoreNotFoundError:
            return None  # a new datastore: nothing to resume
        for v in reversed(candidates):
            if v.source != source or v.status not in UNFINISHED or not stopped(v):
                continue
            body = {
                "source": source,
                "manifest_id": manifest_id,
                "expect_host": v.host,
                "expect_pid": v.pid,
                **_holder(lease),
            }
            try:
                path = f"{self._ds(name)}/versions/{v.number}/takeover"
                return self._remember(
                    version_from(self._api.call("POST", path, body, idempotent=True))
                )
            except ConflictError:
                continue
        return None

    def renew(self, name: str, number: int, lease: Lease) -> bool:
        path = f"{self._ds(name)}/versions/{number}/renew"
        return bool(self._api.call("POST", path, _holder(lease), idempotent=True)["held"])

    def fail_abandoned(self, name: str, below: int, stopped: Stopped) -> list[str]:
        marked = []
        for v in self.versions(name):
            if v.number < below and v.status in UNFINISHED and stopped(v):
                reason = f"abandoned: its create stopped and {name}:{below} succeeded since"
                try:
                    self._patch(name, v.number, {"status": "failed", "reason": reason})
                except ConflictError:
                    continue
                marked.append(v.ref)
        return marked

    def discard_version(self, name: str, number: int) -> None:
        """As ``Catalog.discard_version``, for a version this client made. A discarded number
        may go to the next create, so a request whose answer was lost is sent again only
        while the version is still this client's; found gone, it is done."""
        path, mine = f"{self._ds(name)}/versions/{number}", self._made.get((name, number))
        for delay in (*_DISCARD_BACKOFF, None):
            try:
                self._api.call("DELETE", f"{path}?discard=true")
                return
            except NotFoundError:
                return
            except StorageError as exc:  # unreachable, or a 5xx
                if delay is None or not exc.transient or mine is None:
                    raise
            time.sleep(delay)
            try:
                now = version_from(self._api.call("GET", path))
            except NotFoundError:
                return
            if now.manifest_id != mine or now.status not in UNFINISHED:
                return  # the number went to another create after this one's was discarded

    def _patch(self, name: str, number: int, body: dict[str, Any]) -> None:
        """Status or progress of an unfinished version: sending the same again is harmless."""
        self._api.call("PATCH", f"{self._ds(name)}/versions/{number}", body, idempotent=True)

    def set_status(
        self,
        name: str,
        number: int,
        status: str,
        *,
        reason: str | None = None,
        files: int | None = None,
        size: int | None = None,
        stored_bytes: int | None = None,
        lease: Lease | None = None,
    ) -> None:
        """As ``Catalog.set_status``; ``succeeded`` is the server's commit (which checks the
        upload and records the figures it found)."""
        if status == SUCCEEDED:
            assert lease is not None, "a create commits the version it holds"
            path = f"{self._ds(name)}/versions/{number}/commit"
            self._api.call("POST", path, _holder(lease), wait=True, idempotent=True)
            return
        body: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "files": files,
            "size": size,
            "stored_bytes": stored_bytes,
        }
        if lease is not None:
            body.update(host=lease.host, pid=lease.pid)
        self._patch(name, number, body)

    def set_progress(self, name: str, number: int, done: int, total: int | None) -> None:
        self._patch(name, number, {"progress_done": done, "progress_total": total})

    def set_manifest(self, name: str, number: int, manifest_id: str) -> None:
        raise ConflictError("a team-mode server rewrites manifests itself (its gc)")

    def delete_version(self, name: str, number: int) -> VersionInfo:
        self._succeeded.pop((name, number), None)
        return version_from(self._api.call("DELETE", f"{self._ds(name)}/versions/{number}"))

    def delete_datastore(self, name: str) -> list[VersionInfo]:
        self._succeeded.clear()
        return [version_from(v) for v in self._api.call("DELETE", self._ds(name))]

    # -- reads -----------------------------------------------------------------------------
    def version(self, name: str, number: int) -> VersionInfo:
        """One version; a succeeded one is remembered for ``_KEEP_SUCCEEDED`` seconds (it
        cannot change, only go: a reader that raced a delete reads packs gc has not reclaimed
        yet), so that one read asks the server once, not at each step."""
        hit = self._succeeded.get((name, number))
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        v = version_from(self._api.call("GET", f"{self._ds(name)}/versions/{number}"))
        if v.status == SUCCEEDED:
            self._succeeded[(name, number)] = (v, time.monotonic() + _KEEP_SUCCEEDED)
        return v

    def versions(self, name: str) -> list[VersionInfo]:
        return [version_from(v) for v in self._api.call("GET", f"{self._ds(name)}/versions")]

    def datastores(self) -> list[DatastoreInfo]:
        return [
            datastore_from(d["datastore"])
            for d in self._api.call("GET", "/v1/datastores")
            if d["owner"] == self.owner
        ]
