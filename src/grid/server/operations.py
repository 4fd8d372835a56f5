"""What an operator watches: ``/healthz`` (the process answers), ``/readyz`` (its database and
storage answer), ``/metrics`` (Prometheus text: requests and latency per route, bytes
received), and one JSON log line per request, with a request id that the response carries
(``X-Request-ID``) and the CLI prints with ``--debug``.

Several server processes (``--workers N``) share their metrics through prometheus-client's
multiprocess mode: ``grid server`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before the workers start. A route is logged and counted by its template
(``/v1/objects/{token}``), never its path, so no token or name reaches the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grid.catalog.jobs import JobQueue
from grid.errors import GridError
from grid.server.state import server_state

router = APIRouter(include_in_schema=False)
REQUEST_ID = "X-Request-ID"
_GOOD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
REQUESTS = Counter(
    "grid_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "grid_http_request_seconds",
    "Time to the response's first byte",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECEIVED = Counter("grid_received_bytes_total", "Bytes received from clients", ["kind"])
VERIFIED = Counter("grid_verified_bytes_total", "Bytes of uploads checked at commit", [])
_log = logging.getLogger("grid.requests")


def log_to_stderr() -> None:
    """Send the request lines to stderr (a server process's log)."""
    if not _log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)
        _log.propagate = False


class RequestLog:
    """ASGI middleware: a request id for every request (the caller's ``X-Request-ID`` when it
    is sane, else a new one), echoed in the response, counted, timed and logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = asked if _GOOD_ID.fullmatch(asked) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        start, status = time.perf_counter(), 500
        first_byte: float | None = None

        async def answer(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status, first_byte = message["status"], time.perf_counter() - start
                MutableHeaders(scope=message).append(REQUEST_ID, request_id)
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            self._record(scope, request_id, status, first_byte, time.perf_counter() - start)

    @staticmethod
    def _record(
        scope: Scope, request_id: str, status: int, first: float | None, total: float
    ) -> None:
        route = getattr(scope.get("route"), "path", "(no route)")
        method = scope["method"]
        REQUESTS.labels(method, route, str(status)).inc()
        LATENCY.labels(method, route).observe(first if first is not None else total)
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "ms": round(total * 1000, 1),
            "user": scope.get("state", {}).get("user"),
        }
        _log.info(json.dumps(line))


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: this process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """Readiness: the database answers a query and the storage a listing (503 naming what
    does not, so a load balancer sends no request here meanwhile)."""
    state = server_state(request)
    checks: dict[str, str] = {}
    try:
        state.access.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"failed: {type(exc).__name__}"
    try:
        next(iter(state.objects.list("readyz/")), None)
        checks["storage"] = "ok"
    except Exception as exc:  # any store error means "not ready"
        checks["storage"] = f"failed: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ready else "not ready", **checks}, 200 if ready else 503)


class _Jobs:
    """``grid_jobs``: the jobs table by kind and state, read at each scrape (every server
    and worker shares it, so any process answers for all)."""

    def __init__(self, catalog: Any) -> None:
        self._catalog = catalog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("grid_jobs", "Jobs by kind and state", labels=["kind", "state"])
        with contextlib.suppress(GridError):  # the database away: /readyz says so
            for (kind, state), n in sorted(JobQueue(self._catalog).counts().items()):
                family.add_metric([kind, state], n)
        yield family


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text: every process's metrics when there are several, and the jobs."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for collector in (REQUESTS, LATENCY, RECEIVED, VERIFIED):
            registry.register(collector)
    registry.register(_Jobs(server_state(request).catalog))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
