"""Who may touch which owner's datastores: a user their own, and every team they belong to
(read and write). Anything else is answered exactly as if it did not exist, so that names of
other owners never leak."""

from __future__ import annotations

from dataclasses import dataclass

from grid.catalog import Catalog
from grid.errors import DatastoreNotFoundError, NotFoundError
from grid.records import Principal


@dataclass(frozen=True)
class OwnerView:
    """One owner's catalog as a caller with access to it sees it."""

    name: str
    id: int
    catalog: Catalog


class Access:
    """Owner lookups for callers, over the server's catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._ids: dict[str, int] = {}  # owners are never renamed or removed: safe to keep

    def ping(self) -> None:
        """The database answers (raises what its driver raises when it does not)."""
        self._catalog.ping()

    def visible(self, caller: Principal) -> list[str]:
        """The owners whose datastores ``caller`` sees: themself first, then their teams."""
        return [caller.user, *sorted(caller.teams)]

    def owner(self, caller: Principal, owner: str, datastore: str | None = None) -> OwnerView:
        """``owner`` if ``caller`` may use it.

        Raises:
            DatastoreNotFoundError: (naming ``datastore``) or NotFoundError: no such owner
                for this caller, whether it exists or not.
        """
        owner_id = None
        if owner in self.visible(caller):
            owner_id = self._ids.get(owner) or self._catalog.owner_id_of(owner)
            if owner_id is not None:
                self._ids[owner] = owner_id
        if owner_id is None:
            if datastore is not None:  # the very words the catalog uses for a missing one
                raise DatastoreNotFoundError(
                    f"no datastore named {datastore!r}", datastore=datastore
                )
            raise NotFoundError(f"no owner named {owner!r}", name=owner)
        return OwnerView(owner, owner_id, self._catalog.acting_for(owner_id))
