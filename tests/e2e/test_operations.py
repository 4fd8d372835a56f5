"""What an operator watches, on real `grid server` processes: /healthz, /readyz (503 naming
the storage when its bucket is gone), /metrics in the Prometheus text format summed over
several worker processes, one JSON log line per request with the request id the response
carries (and no key in it), and the CLI's --debug printing the id of a failed request."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import boto3
import httpx
import pytest

from tests.team import GRID, new_user
from tests.web import grid_server

pytestmark = pytest.mark.slow


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text``."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{"):
            sample, value = line.rsplit(" ", 1)
            inner = sample[len(name) + 1 : -1]
            if ",".join(sorted(inner.split(","))) == want:
                return float(value)
    raise AssertionError(f"no {name}{{{want}}} in /metrics")


def test_health_metrics_over_two_workers_and_request_lines(tmp_path):
    with grid_server(tmp_path, "", "--workers", "2") as (database, url):
        _, key = new_user(database)
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "database": "ok", "storage": "ok"}
        for _ in range(20):  # new connections: both workers answer some
            assert httpx.get(f"{url}/v1/whoami", headers=auth).status_code == 200
        mine = httpx.get(f"{url}/v1/whoami", headers={**auth, "X-Request-ID": "trace-42"})
        assert mine.headers["x-request-id"] == "trace-42"
        odd = httpx.get(f"{url}/v1/whoami", headers={**auth, "X-Request-ID": "a b\tc" * 30})
        assert odd.headers["x-request-id"] != "a b\tc" * 30  # replaced by one of the server's
        missing = httpx.get(f"{url}/v1/datastores/nobody/x/versions", headers=auth)
        assert missing.status_code == 404 and len(missing.headers["x-request-id"]) == 16
        text = httpx.get(f"{url}/metrics").text
        whoami = {"method": "GET", "route": "/v1/whoami", "status": "200"}
        assert _metric(text, "grid_http_requests_total", **whoami) == 22  # both workers
        count = _metric(text, "grid_http_request_seconds_count", method="GET", route="/v1/whoami")
        assert count == 22
        not_found = {"method": "GET", "route": "/v1/datastores/{owner}/{name}/versions"}
        assert _metric(text, "grid_http_requests_total", **not_found, status="404") == 1
        assert "nobody" not in text and key not in text
    lines = [
        json.loads(line)
        for line in (tmp_path / "server.log").read_text().splitlines()
        if line.startswith("{")
    ]
    traced = [line for line in lines if line["request_id"] == "trace-42"]
    assert len(traced) == 1 and traced[0]["route"] == "/v1/whoami"
    assert traced[0]["status"] == 200 and traced[0]["user"] and traced[0]["ms"] >= 0
    assert any(line["status"] == 404 and line["route"].endswith("/versions") for line in lines)
    assert key not in (tmp_path / "server.log").read_text()


def test_readyz_names_storage_that_is_gone(seaweedfs_endpoint, tmp_path):
    bucket = f"grid-ready-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=seaweedfs_endpoint)
    s3.create_bucket(Bucket=bucket)
    storage = f"s3://{bucket}/grid"
    with grid_server(tmp_path, storage, AWS_ENDPOINT_URL=seaweedfs_endpoint) as (_, url):
        assert httpx.get(f"{url}/readyz").status_code == 200
        s3.delete_bucket(Bucket=bucket)
        gone = httpx.get(f"{url}/readyz")
        assert gone.status_code == 503
        assert gone.json()["database"] == "ok" and gone.json()["storage"].startswith("failed")
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive, not ready


def test_debug_prints_the_request_id_the_server_logged(tmp_path):
    with grid_server(tmp_path) as (database, url):
        _, key = new_user(database)
        env = {**os.environ, "GRID_HOME": str(tmp_path / "h"), "GRID_URL": url,
               "GRID_API_KEY": key}  # fmt: skip
        r = subprocess.run(
            [*GRID, "--debug", "datastore", "show", "ghost:1"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 3
        said = [x for x in r.stderr.splitlines() if "request id" in x]
        assert len(said) == 1
        request_id = said[0].rsplit(" ", 1)[-1]
        plain = subprocess.run(
            [*GRID, "datastore", "show", "ghost:1"], env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert "request id" not in plain.stderr  # only with --debug
    logged = [
        json.loads(line)
        for line in (tmp_path / "server.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert [x["status"] for x in logged if x["request_id"] == request_id] == [404]
