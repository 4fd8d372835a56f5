"""One client interface (issue 14's seam): front-ends get their client from ``grid.connect``,
and every public operation of the embedded client is part of the interface, so a remote
implementation cannot lack one."""

from __future__ import annotations

import inspect

import grid
from grid.client import DatastoreClient


def _public(cls) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}


def test_the_embedded_client_adds_nothing_public_beyond_the_interface():
    assert issubclass(grid.Client, DatastoreClient)
    assert _public(grid.Client) == _public(DatastoreClient)


def test_signatures_match_the_interface():
    for name in _public(DatastoreClient):
        ours = inspect.signature(getattr(grid.Client, name))
        theirs = inspect.signature(getattr(DatastoreClient, name))
        assert list(ours.parameters) == list(theirs.parameters), name


def test_connect_gives_the_embedded_installation_by_default(home):
    with grid.connect(str(home)) as client:
        assert isinstance(client, DatastoreClient)
        assert client.list() == []
        assert client.parse_ref("cats:3") == ("cats", 3)
        assert client.default_name("s3://bucket/data/cats/") == "cats"
