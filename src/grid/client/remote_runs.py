"""The caller's runs and sessions on a team-mode server (``grid.service.runs.RunPort``):
every call is one request."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from grid.client.api_session import ApiSession
from grid.client.wire import run_from
from grid.records import Attachment, RunInfo
from grid.service.names import split_owner


def _attach(uses: Sequence[Attachment]) -> list[dict[str, Any]]:
    return [{"datastore": a.datastore, "version": a.version, "path": a.path} for a in uses]


class RemoteRuns:
    """Runs through ``api``; ``me`` names the caller (whose datastores need no owner)."""

    def __init__(self, api: ApiSession, me: str) -> None:
        self._api = api
        self._me = me

    def start(self, *, uses: Sequence[Attachment], **fields: Any) -> RunInfo:
        body = {**fields, "command": list(fields["command"]), "datastores": _attach(uses)}
        return run_from(self._api.call("POST", "/v1/runs", body))

    def update(self, run_id: int, lease_seconds: float | None = None, **changes: Any) -> RunInfo:
        body = {k: v for k, v in changes.items() if v is not None}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        return run_from(self._api.call("PATCH", f"/v1/runs/{int(run_id)}", body, idempotent=True))

    def attach(self, run_id: int, uses: Sequence[Attachment]) -> RunInfo:
        return run_from(self._api.call("POST", f"/v1/runs/{int(run_id)}/attach", _attach(uses)))

    def detach(self, run_id: int, shown_as: str, number: int) -> RunInfo:
        body = {"datastore": shown_as, "version": number}
        return run_from(self._api.call("POST", f"/v1/runs/{int(run_id)}/detach", body))

    def get(self, run_id: int) -> RunInfo:
        return run_from(self._api.call("GET", f"/v1/runs/{int(run_id)}"))

    def list(self, kind: str | None = None) -> builtins.list[RunInfo]:
        query = "" if kind is None else f"?kind={quote(kind)}"
        return [run_from(r) for r in self._api.call("GET", f"/v1/runs{query}")]

    def users_of(self, name: str, number: int) -> builtins.list[RunInfo]:
        owner, plain = split_owner(name)
        path = (
            f"/v1/datastores/{quote(owner or self._me, safe='')}/{quote(plain, safe='')}"
            f"/versions/{int(number)}/runs"
        )
        return [run_from(r) for r in self._api.call("GET", path)]

    def job_key(self, run_id: int, seconds: float) -> str:
        """A run key for a job of run ``run_id``: it reads the run's versions while the run
        lives, for ``seconds`` at most."""
        body = {"expires_in": seconds}
        return str(self._api.call("POST", f"/v1/runs/{int(run_id)}/key", body)["key"])
