"""What every request of one server process shares: its view of the database and the
storage, and its settings. Nothing here is state of its own: every server on the same
database and storage has an equal one."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from grid.catalog import Accounts, Catalog
from grid.catalog.packs import PackRegistry
from grid.objects import ObjectStore
from grid.server.access import Access
from grid.server.storage import ObjectUrls
from grid.sources.archive_rules import ArchiveLimits


@dataclass
class ServerState:
    """A server's shared parts (``scratch``: a local folder for files being checked;
    ``s3_import_buckets``: the buckets it reads for users with its own credentials)."""

    catalog: Catalog
    accounts: Accounts
    access: Access
    packs: PackRegistry
    objects: ObjectStore
    urls: ObjectUrls
    scratch: str
    limits: ArchiveLimits
    allow_private_urls: bool
    s3_import_buckets: frozenset[str] = frozenset()  # "*": any, but never storage_bucket
    storage_bucket: str | None = None
    secret: str = ""  # the installation's signing secret (web pages' CSRF tokens)
    run_executor: str | None = None  # the web page starts runs with it (None: it does not)


def open_state(
    database_url: str,
    storage_url: str,
    *,
    scratch: str | None = None,
    allow_private_urls: bool = False,
    s3_import_buckets: frozenset[str] = frozenset(),
    run_executor: str | None = None,
) -> ServerState:
    """A server's (or a worker's) parts over the catalog at ``database_url`` (migrated on
    first use) and the object store at ``storage_url`` (see ``grid.server.app.create_app``).
    Archive limits come from the GRID_ARCHIVE_MAX_* settings."""
    import os
    import tempfile

    from grid.server.storage import ObjectUrls, open_storage
    from grid.settings import Settings
    from grid.sources.archive_rules import ArchiveLimits

    settings = Settings.from_env()
    catalog = Catalog(
        database_url,
        owner=None,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    objects = open_storage(storage_url)
    secret = catalog.signing_secret()
    return ServerState(
        catalog=catalog,
        accounts=Accounts(catalog),
        access=Access(catalog),
        packs=PackRegistry(catalog),
        objects=objects,
        urls=ObjectUrls(objects, secret),
        scratch=scratch or os.path.join(tempfile.gettempdir(), "grid-server"),
        limits=ArchiveLimits(
            max_bytes=settings.archive_max_size,
            max_entries=settings.archive_max_files,
            max_ratio=settings.archive_max_ratio,
        ),
        allow_private_urls=allow_private_urls,
        s3_import_buckets=s3_import_buckets,
        storage_bucket=storage_url[5:].split("/", 1)[0]
        if storage_url.startswith("s3://")
        else None,
        secret=secret,
        run_executor=run_executor,
    )


def server_state(request: Request) -> ServerState:
    """The state of the server answering ``request``."""
    state: ServerState = request.app.state.grid
    return state
