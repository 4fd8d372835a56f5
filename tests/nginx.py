"""nginx as the load balancer in front of several `grid server` processes in tests (Debian's
package, installed by scripts/install.sh, run as a foreground subprocess, never as a service):
every file it writes stays in one folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.team import free_port

NGINX = "/usr/sbin/nginx"

# A failed upstream is left alone for fail_timeout; a refused connection (or, for GET, a
# broken one) is passed to the next server at once; no time limit a commit's check could hit.
_CONFIG = """\
{user}worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 512; }}
http {{
    log_format balanced '$request_method $uri $status $upstream_addr $upstream_status';
    access_log {root}/access.log balanced;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream grid {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://grid;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Request-ID $http_x_request_id;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 2;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
    }}
}}
"""


def nginx_or_skip() -> str:
    """The nginx binary, or skip the module where it is missing."""
    found = shutil.which(NGINX) or shutil.which("nginx")
    if found is None:
        pytest.skip(
            "nginx is not installed (scripts/install.sh installs it)", allow_module_level=True
        )
    return found


def write_config(root: Path, port: int, upstreams: Sequence[str]) -> Path:
    """nginx.conf in ``root`` balancing ``127.0.0.1:port`` over ``upstreams`` (``host:port``)."""
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / temp).mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=5s;" for u in upstreams)
    # run as root, the workers stay root: the folder is private to the test's user
    user = "user root;\n" if os.geteuid() == 0 else ""
    path = root / "nginx.conf"
    path.write_text(_CONFIG.format(user=user, root=root, servers=servers, port=port))
    return path


@contextmanager
def load_balancer(root: Path, urls: Sequence[str]) -> Iterator[str]:
    """nginx in front of the servers at ``urls`` (``http://host:port``), once it answers;
    yields its URL and stops it after."""
    binary = nginx_or_skip()
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_config(root, port, [u.removeprefix("http://") for u in urls])
    with open(root / "nginx.out", "wb") as out:
        proc = subprocess.Popen(
            [binary, "-p", str(root), "-e", str(root / "error.log"), "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_it_answers(proc, url, root)
        yield url
    finally:
        proc.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_until_it_answers(proc: subprocess.Popen, url: str, root: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/v1/health", timeout=1)
            return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            errors = (root / "error.log").read_text() if (root / "error.log").exists() else ""
            raise RuntimeError(f"nginx did not start: {errors}")
        time.sleep(0.05)
