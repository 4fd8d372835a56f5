"""List datastores and show a datastore's versions."""

from __future__ import annotations

from grid.records import DatastoreInfo, VersionInfo
from grid.service.catalog_port import CatalogPort
from grid.service.context import Context


def list_datastores(ctx: Context) -> list[DatastoreInfo]:
    """Every datastore of the owner, by name."""
    return ctx.catalog.datastores()


def show(ctx: Context, name: str, number: int | None = None) -> list[VersionInfo]:
    """The versions of ``name`` (oldest first), or just version ``number``."""
    if number is not None:
        return [ctx.catalog.version(name, number)]
    return ctx.catalog.versions(name)


def all_versions(catalog: CatalogPort) -> list[VersionInfo]:
    """Every version of every datastore of the owner, of every status."""
    return [v for d in catalog.datastores() for v in catalog.versions(d.name)]
