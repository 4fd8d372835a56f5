"""Start the API server, and the operator's account commands (straight on the database)."""

from __future__ import annotations

from grid.catalog import Accounts, Catalog
from grid.records import ApiKeyInfo, UserInfo
from grid.server.storage import open_storage


def serve(
    database_url: str,
    storage_url: str,
    host: str,
    port: int,
    workers: int = 1,
    allow_private_urls: bool = False,
    s3_import_buckets: tuple[str, ...] = (),
    run_executor: str | None = None,
    *,
    jobs: bool = True,
) -> None:
    """Serve the API on ``host:port`` with ``workers`` processes until stopped, keeping bytes
    in ``storage_url`` (``s3://bucket/prefix`` or a folder); ``allow_private_urls``: imports
    may fetch from loopback and private addresses; ``s3_import_buckets``: the buckets imports
    may read with the server's credentials (``*``: any but its storage's); ``run_executor``:
    the web page starts runs with it (``local``, ``slurm``; None: it does not); ``jobs``:
    each process also runs jobs (else `grid worker` processes do)."""
    import os

    import uvicorn

    Catalog(database_url, owner=None).close()  # migrate once, before the workers start
    open_storage(storage_url).close()  # a bad URL fails here, with one line
    os.environ["GRID_DATABASE_URL"] = database_url  # read by each worker's app_from_env
    os.environ["GRID_SERVER_STORAGE"] = storage_url
    os.environ["GRID_ALLOW_PRIVATE_URLS"] = "1" if allow_private_urls else "0"
    os.environ["GRID_S3_IMPORT_BUCKETS"] = ",".join(s3_import_buckets)
    os.environ["GRID_RUN_EXECUTOR"] = run_executor or ""
    os.environ["GRID_SERVER_JOBS"] = "1" if jobs else "0"
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # the workers' metrics, summed
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="grid-metrics-")
    uvicorn.run(
        "grid.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


class Admin:
    """What an operator does to accounts, given the database URL (``grid admin``)."""

    def __init__(self, database_url: str) -> None:
        self._catalog = Catalog(database_url, owner=None)
        self._accounts = Accounts(self._catalog)

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self._catalog.close()

    def create_user(self, name: str) -> tuple[UserInfo, str, ApiKeyInfo]:
        """Add a user with a first API key: (the user, the key shown once, its record)."""
        user = self._accounts.create_user(name)
        key, info = self._accounts.create_key(name)
        return user, key, info

    def users(self) -> list[UserInfo]:
        return self._accounts.users()

    def disable_user(self, name: str) -> UserInfo:
        return self._accounts.disable_user(name)

    def create_team(self, name: str) -> UserInfo:
        return self._accounts.create_team(name)

    def add_member(self, team: str, user: str) -> UserInfo:
        return self._accounts.add_member(team, user)
