"""What operations report back: plain dataclasses at the bottom layer, so that every client
(embedded or remote) and front-end can use them without the store or the catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grid.records import VersionInfo


@dataclass(frozen=True)
class Change:
    """One path that differs; ``old_size`` is None when added, ``new_size`` when removed."""

    path: str
    kind: str
    old_size: int | None
    new_size: int | None


@dataclass
class DiffReport:
    """Differences from version ``a`` to version ``b`` of a datastore."""

    name: str
    a: int
    b: int
    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    modified: list[Change] = field(default_factory=list)

    @property
    def added_bytes(self) -> int:
        return sum(c.new_size or 0 for c in self.added)

    @property
    def removed_bytes(self) -> int:
        return sum(c.old_size or 0 for c in self.removed)


@dataclass
class VerifyReport:
    """What ``verify`` found: ``damaged`` maps a path to the first problem seen in it."""

    version: VersionInfo
    files: int = 0
    bytes: int = 0
    damaged: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.damaged


@dataclass
class DownloadReport:
    """What ``download`` wrote: files written, files already there (``resume``), bytes."""

    version: VersionInfo
    files: int = 0
    skipped: int = 0
    bytes: int = 0


@dataclass
class GcReport:
    """What a gc run did (or, with ``dry_run``, would do). ``bytes_reclaimed`` is net: the
    packs deleted and repacked less the packs a repack wrote; ``live_*``: the packs in use
    after the run, those a repack wrote included."""

    packs_deleted: int = 0
    packs_repacked: int = 0
    bytes_reclaimed: int = 0
    bytes_copied: int = 0
    manifests_rewritten: int = 0
    manifests_deleted: int = 0
    live_packs: int = 0
    live_bytes: int = 0
    kept_young: int = 0  # unreferenced objects kept: younger than the grace period
    kept_young_bytes: int = 0
    kept_unknown: int = 0  # ... not recorded as written by this installation
    kept_unknown_bytes: int = 0
    kept_for_readers: int = 0  # replaced objects a reader of a live version may still need
    retired_deleted: int = 0  # replaced objects (this run's or earlier) deleted, now unread


@dataclass
class VersionUsage:
    """A succeeded version's share of the store. ``added_bytes``: what its create stored that
    the store did not have (its ``stored_bytes``; fixed at creation). ``exclusive_bytes``: what
    it alone uses now, which deleting it and running gc gives back (see the README)."""

    datastore: str
    number: int
    added_bytes: int
    exclusive_bytes: int


@dataclass
class DatastoreUsage:
    """A datastore's share: ``added_bytes`` summed over its versions; ``exclusive_bytes``
    what no other datastore uses, which deleting the whole datastore gives back."""

    name: str
    added_bytes: int
    exclusive_bytes: int


@dataclass
class UsageReport:
    """Where a store's bytes go. ``stored_bytes``: every pack and manifest object in it;
    ``referenced_bytes``: what succeeded versions use (their blobs with their pack entries,
    their manifests); the rest is gc's to give back (deleted versions' data, failed creates')."""

    datastores: list[DatastoreUsage] = field(default_factory=list)
    versions: list[VersionUsage] = field(default_factory=list)
    stored_bytes: int = 0
    packs: int = 0
    manifests: int = 0
    referenced_bytes: int = 0

    @property
    def unreferenced_bytes(self) -> int:
        return max(0, self.stored_bytes - self.referenced_bytes)

    def of_version(self, datastore: str, number: int) -> VersionUsage | None:
        """The usage of ``datastore:number``, None unless it is a succeeded version."""
        return next(
            (v for v in self.versions if v.datastore == datastore and v.number == number), None
        )

    def of_datastore(self, name: str) -> DatastoreUsage | None:
        return next((d for d in self.datastores if d.name == name), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageReport:
        """The report ``dataclasses.asdict`` made (a cache file, a server's answer)."""
        return cls(
            datastores=[DatastoreUsage(**d) for d in data["datastores"]],
            versions=[VersionUsage(**v) for v in data["versions"]],
            **{k: int(data[k]) for k in ("stored_bytes", "packs", "manifests", "referenced_bytes")},
        )


@dataclass
class CreateProgress:
    """Where a create stands; totals are None until the background count has finished."""

    files: int
    bytes: int
    total_files: int | None
    total_bytes: int | None
    phase: str
    downloaded: int | None = None  # an archive's bytes downloaded so far
    download_total: int | None = None  # ... out of this many (None: unknown)


Progress = Callable[[CreateProgress], None]
