import grid
import grid.errors

# Pinned: a name added to grid or dropped from it must change this list too.
EXPORTED = [
    "ArchiveError", "Client", "ConflictError", "DatastoreClient", "DatastoreInfo",
    "DatastoreNotFoundError", "DestinationError", "DestinationFullError", "FileInfo",
    "ForbiddenError", "FormatVersionError", "GridError", "IntegrityError", "Interrupted",
    "InvalidNameError", "JobCancelledError", "JobInfo", "JobNotFoundError", "NoSpaceError",
    "NotFoundError", "PathNotFoundError", "ReferenceChangedError", "RunNotFoundError",
    "ScheduleInfo", "ServerUnreachableError", "SourceError", "StorageClaimedError", "StorageError",
    "UnauthorizedError", "UnsafeHomeError", "UploadRefusedError", "UsageError", "VersionInfo",
    "VersionNotFoundError", "VersionNotReadyError", "__version__", "connect",
]  # fmt: skip


def test_all_is_the_pinned_list_and_every_name_exists():
    assert grid.__all__ == EXPORTED
    for name in EXPORTED:
        assert hasattr(grid, name), name
    public = {n for n in dir(grid) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(EXPORTED)


def test_every_error_a_caller_can_meet_is_exported():
    for cls in grid.errors.codes().values():
        assert getattr(grid, cls.__name__) is cls, cls.__name__
    assert issubclass(grid.NotFoundError, LookupError)
    assert issubclass(grid.DatastoreNotFoundError, grid.GridError)
    assert issubclass(grid.ArchiveError, grid.SourceError)
