import grid


def test_all_exports_exist_and_nothing_public_is_missing():
    exported = set(grid.__all__)
    for name in exported:
        assert hasattr(grid, name), name
    public = {n for n in dir(grid) if not n.startswith("_") and n[0].isupper()}
    assert public <= exported
    assert issubclass(grid.NotFoundError, LookupError)
    assert issubclass(grid.DatastoreNotFoundError, grid.GridError)
