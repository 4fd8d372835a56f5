"""What every request of one server process shares: its view of the database and the
storage, and its settings. Nothing here is state of its own: every server on the same
database and storage has an equal one."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from grid.catalog import Accounts
from grid.catalog.packs import PackRegistry
from grid.objects import ObjectStore
from grid.server.access import Access
from grid.server.storage import ObjectUrls
from grid.sources.archive_rules import ArchiveLimits


@dataclass
class ServerState:
    """A server's shared parts (``scratch``: a local folder for files being checked;
    ``s3_import_buckets``: the buckets it reads for users with its own credentials)."""

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


def server_state(request: Request) -> ServerState:
    """The state of the server answering ``request``."""
    state: ServerState = request.app.state.grid
    return state
