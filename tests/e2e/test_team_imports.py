"""Team mode: archive URLs given to a logged-in create are fetched by the server, not through
the laptop (issue 14); private addresses only when the server allows them."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

import grid
from grid.client.remote import RemoteClient
from tests.archive_server import ArchiveServer
from tests.team import GRID, new_user, start_server, stop

pytestmark = pytest.mark.slow  # a `grid server` fetching archives and prefixes


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def archives():
    files = {f"cats/{i}.bin": os.urandom(20_000 + i) for i in range(30)}
    with ArchiveServer() as s:
        s.served.files["/cats.tar.gz"] = _tar(files)
        s.served.files["/bomb.tar.gz"] = _tar({"zeros.bin": bytes(50 << 20)})
        yield s, {k.removeprefix("cats/"): v for k, v in files.items()}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two one-machine servers on one database: one allows private URLs, one does not."""
    root = tmp_path_factory.mktemp("imports")
    database = f"sqlite:///{root / 'db.sqlite'}"
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    strict = start_server(database, str(root / "objects"), root / "a", log)
    lenient = start_server(database, str(root / "objects"), root / "b", log, "--allow-private-urls")
    yield database, strict, lenient
    for proc, _ in (strict, lenient):
        stop(proc)
    log.close()


def test_the_server_fetches_an_archive_url_and_stores_only_new_blobs(servers, archives, tmp_path):
    database, (strict, _), (proc, url) = servers
    server, files = archives
    _, key = new_user(database)
    seen = []
    with RemoteClient(url, key, str(tmp_path / "laptop")) as client:
        v = client.create(server.url("/cats.tar.gz"), "cats", progress=seen.append)
        assert v.status == "succeeded" and v.files == len(files)
        # made by a server process (a job: either server's worker may run it), not this one
        assert v.pid in (proc.pid, strict.pid)
        assert client.read_bytes("cats", 1, "7.bin") == files["7.bin"]
        assert client.verify("cats", 1).ok
        again = client.create(server.url("/cats.tar.gz"), "cats")
        assert again.number == 2 and again.stored_bytes < v.stored_bytes // 10
        assert client.create(server.url("/cats.tar.gz"), "cats", skip_unchanged=True).number == 2
    assert seen and seen[-1].files == len(files)


def test_a_bomb_is_refused_by_the_server_and_leaves_no_version(servers, archives, tmp_path):
    database, _, (_, url) = servers
    server, _ = archives
    _, key = new_user(database)
    with RemoteClient(url, key, str(tmp_path / "laptop")) as client:
        with pytest.raises(grid.errors.ArchiveError):
            client.create(server.url("/bomb.tar.gz"), "bomb", max_ratio=10)
        assert client.list() == []


def test_private_addresses_are_refused_unless_the_server_allows_them(servers, archives, tmp_path):
    database, (_, strict_url), _ = servers
    server, _ = archives
    _, key = new_user(database)
    env = {
        **os.environ,
        "GRID_HOME": str(tmp_path / "home"),
        "GRID_URL": strict_url,
        "GRID_API_KEY": key,
    }
    r = subprocess.run(
        [*GRID, "datastore", "create", server.url("/cats.tar.gz"), "--name", "cats"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "internal address" in r.stderr and "--allow-private-urls" in r.stderr
    with RemoteClient(strict_url, key, str(tmp_path / "h2")) as client:
        assert client.list() == []


def test_s3_prefixes_are_read_by_the_server_only_in_buckets_its_operator_opened(
    s3_endpoint, tmp_path, monkeypatch
):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    opened, other = f"open-{os.getpid()}", f"mine-{os.getpid()}"
    for bucket in (opened, other):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="data/a.txt", Body=b"alpha " + bucket.encode())
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc, url = start_server(
        database,
        str(tmp_path / "objects"),
        tmp_path / "srv",
        log,
        "--allow-s3-import",
        opened,
        AWS_ENDPOINT_URL=s3_endpoint,
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    try:
        _, key = new_user(database)
        warnings: list[str] = []
        with RemoteClient(url, key, str(tmp_path / "laptop")) as client:
            by_server = client.create(f"s3://{opened}/data", "a")
            assert by_server.pid == proc.pid
            by_me = client.create(f"s3://{other}/data", "b", warn=warnings.append)
            assert by_me.pid == os.getpid()  # read here, with this machine's credentials
            assert client.read_bytes("b", 1, "a.txt") == b"alpha " + other.encode()
            assert client.read_bytes("a", 1, "a.txt") == b"alpha " + opened.encode()
        assert any(f"does not read s3://{other}" in w for w in warnings)
    finally:
        stop(proc)
        log.close()
