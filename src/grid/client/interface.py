"""The one client interface every front-end (CLI, mount, fsspec, Python users) speaks.

``grid.Client`` implements it in-process on the embedded installation; a remote client (team
mode) implements it over HTTP. ``grid.connect()`` picks one from the settings. The values it
returns live at the bottom layers (``grid.records``, ``grid.reports``), so an implementation
needs neither the store nor the catalog.
"""

from __future__ import annotations

import builtins
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from grid.errors import NotFoundError, UsageError
from grid.records import DatastoreInfo, FileInfo, JobInfo, RunInfo, ScheduleInfo, VersionInfo
from grid.reports import (
    DiffReport,
    DownloadReport,
    GcReport,
    Progress,
    UsageReport,
    VerifyReport,
)
from grid.service.names import parse_ref
from grid.tree import Warn

if TYPE_CHECKING:  # (the runs module reads the catalog: not imported by remote clients)
    from grid.service.runs import RunPort


class EntryLike(Protocol):
    """A path of a version as a filesystem front-end sees it."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def mode(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def target(self) -> str | None: ...


class VersionReader(Protocol):
    """A version opened for random access by entry id (what the FUSE mount needs), and
    read many files at a time (what ``grid.torch`` needs)."""

    @property
    def version(self) -> VersionInfo: ...
    def entry(self, entry_id: int) -> EntryLike: ...
    def child(self, parent_id: int, name: str) -> EntryLike: ...
    def children(
        self, parent_id: int, after: str = "", limit: int = 1000
    ) -> Sequence[EntryLike]: ...
    def child_rows(
        self, parent_id: int, after: str = "", limit: int = 1000
    ) -> Sequence[tuple[Any, ...]]: ...
    def path_of(self, entry_id: int) -> str: ...
    def read(self, entry: Any, offset: int, size: int) -> bytes: ...
    def files(self, prefix: str = "") -> list[tuple[int, str, int, int]]: ...
    def read_files(self, entry_ids: Sequence[int]) -> list[bytes]: ...
    def close(self) -> None: ...


class DatastoreClient(ABC):
    """Every datastore operation of one caller; the same meaning, results and errors whoever
    implements it. Use as a context manager, or ``close()``."""

    keeps_schedules = False  # a grid server keeps schedules of URLs and S3 prefixes

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self) -> DatastoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------
    @abstractmethod
    def create(
        self,
        source: str,
        name: str | None = None,
        *,
        progress: Progress | None = None,
        warn: Warn | None = None,
        count_totals: bool = False,
        rehash: bool = False,
        skip_unchanged: bool = False,
        endpoint_url: str | None = None,
        profile: str | None = None,
        keep_root: bool = False,
        max_size: int | None = None,
        max_files: int | None = None,
        max_ratio: float | None = None,
        no_copy: bool = False,
    ) -> VersionInfo:
        """Make the next version of ``name`` from a folder, a file, an archive URL or an S3
        prefix (see ``grid.Client.create``)."""

    @abstractmethod
    def delete(self, name: str, version: int | None = None) -> builtins.list[VersionInfo]:
        """Delete one version, or the whole datastore when ``version`` is None."""

    @abstractmethod
    def keep_last(
        self, name: str, keep: int, *, warn: Callable[[str], None] | None = None
    ) -> builtins.list[VersionInfo]:
        """Delete the versions of ``name`` older than its ``keep`` newest succeeded ones."""

    @abstractmethod
    def gc(
        self, *, dry_run: bool = False, repack_below: float = 0.5, grace: float | None = None
    ) -> GcReport:
        """Give back the space of deleted versions."""

    @abstractmethod
    def usage(self) -> UsageReport:
        """Where the stored bytes of the caller's datastores go: what each succeeded version
        and datastore added when created, what each alone uses now (what deleting it, then
        gc, gives back), and the store's total (with a server: each owner's, summed)."""

    # -- reading -----------------------------------------------------------------------------
    @abstractmethod
    def list(self) -> builtins.list[DatastoreInfo]:
        """Every datastore the caller can see, with its latest version."""

    @abstractmethod
    def versions(self, name: str) -> builtins.list[VersionInfo]:
        """All versions of ``name``, oldest first."""

    @abstractmethod
    def version(self, name: str, version: int) -> VersionInfo:
        """One version of ``name``."""

    @abstractmethod
    def ls(self, name: str, version: int | None = None, path: str = "") -> builtins.list[FileInfo]:
        """Entries of directory ``path`` of a succeeded version (default: the latest)."""

    @abstractmethod
    def stat(self, name: str, version: int | None, path: str, *, follow: bool = False) -> FileInfo:
        """Metadata of ``path`` in a version (of a symlink's target with ``follow``)."""

    @abstractmethod
    def iter_bytes(self, name: str, version: int | None, path: str) -> Iterator[bytes]:
        """Stream a file's bytes, verified against their hashes."""

    def read_bytes(self, name: str, version: int | None, path: str) -> bytes:
        """Return a whole file's bytes, verified against their hashes."""
        return b"".join(self.iter_bytes(name, version, path))

    @abstractmethod
    def open(self, name: str, version: int | None, path: str) -> io.BufferedReader:
        """Open a file of a version as a seekable binary file object (read-only)."""

    @abstractmethod
    def iter_files(
        self, name: str, version: int | None = None, prefix: str = ""
    ) -> Iterator[tuple[str, bytes]]:
        """Yield ``(path, bytes)`` of every file under ``prefix``, in storage order."""

    @abstractmethod
    def diff(self, name: str, a: int | None, b: int | None) -> DiffReport:
        """Paths added, removed and modified from version ``a`` to ``b`` (None: the latest)."""

    @abstractmethod
    def verify(self, name: str, version: int | None = None) -> VerifyReport:
        """Re-read and re-hash every blob of a version."""

    @abstractmethod
    def download(
        self,
        name: str,
        version: int | None,
        dest: str,
        *,
        force: bool = False,
        resume: bool = False,
    ) -> DownloadReport:
        """Write a version's tree under ``dest``; resumable."""

    @abstractmethod
    def snapshot(self, name: str, version: int | None = None) -> VersionReader:
        """Open a succeeded version for random access by entry id (the FUSE mount)."""

    # -- runs and sessions ---------------------------------------------------------------------
    @property
    @abstractmethod
    def runs(self) -> RunPort:
        """The caller's runs and sessions (records only: ``grid.runs`` starts them)."""

    @abstractmethod
    def pin(self, name: str, version: int | None = None) -> VersionInfo:
        """The version a run attaches: ``version`` (it must have succeeded), or the latest
        succeeded one."""

    @abstractmethod
    def list_runs(self, kind: str | None = None) -> builtins.list[RunInfo]:
        """The caller's runs (``kind`` "run") or sessions ("session"), oldest first; those
        whose supervising process on this machine is gone are marked lost."""

    @abstractmethod
    def version_runs(self, name: str, version: int) -> builtins.list[RunInfo]:
        """The runs and sessions, of anyone, that attached ``name:version`` (lineage)."""

    # -- jobs: work a server's workers do (imports, scheduled re-imports, gc) -----------------
    @abstractmethod
    def jobs(self, limit: int = 1000) -> builtins.list[JobInfo]:
        """The newest jobs of the caller's owners, newest first (an embedded installation
        runs its work itself: it has none)."""

    @abstractmethod
    def job(self, job_id: int) -> JobInfo:
        """One job of the caller's owners (``JobNotFoundError`` if none)."""

    @abstractmethod
    def cancel_job(self, job_id: int) -> JobInfo:
        """Cancel a job that has not ended (``ConflictError`` if it has)."""

    # -- schedules a server keeps (an embedded installation schedules with cron) -------------
    def schedule(
        self,
        source: str,
        name: str,
        every_seconds: int,
        keep_last: int | None = None,
        *,
        endpoint_url: str | None = None,
    ) -> ScheduleInfo:
        """Have the server re-import ``source`` (an archive URL or ``s3://`` prefix) into
        ``name`` every ``every_seconds``, making a version only when it changed."""
        raise UsageError(
            "only a grid server keeps schedules: `grid login` first, or schedule with cron "
            "(`grid datastore schedule` does that when not logged in)",
            rule="server-side schedules need team mode",
        )

    def unschedule(self, name: str) -> None:
        """Remove the server's schedule of ``name`` (``NotFoundError`` if none)."""
        raise NotFoundError(f"no schedule for {name!r}", name=name)

    def schedules(self) -> builtins.list[ScheduleInfo]:
        """The schedules the server keeps for the caller and their teams."""
        return []

    @staticmethod
    def fetchable(source: str) -> bool:
        """Whether ``source`` is one a server can fetch itself: an archive URL or an
        ``s3://`` prefix (a folder or file is this machine's)."""
        from grid.sources.archive import is_url

        return is_url(source) or source.startswith("s3://")

    @staticmethod
    def default_name(source: str) -> str:
        """The datastore name ``create`` uses for ``source`` when none is given."""
        from grid.sources.factory import default_name

        return default_name(source)

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, int | None]:
        """Split ``NAME[:VERSION]``."""
        return parse_ref(ref)
