"""What operations report back: plain dataclasses at the bottom layer, so that every client
(embedded or remote) and front-end can use them without the store or the catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
    """What a gc run did (or, with ``dry_run``, would do)."""

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
