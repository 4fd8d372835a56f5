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


def test_the_remote_client_adds_only_who_the_caller_is():
    from grid.client.remote import RemoteClient

    assert issubclass(RemoteClient, DatastoreClient)
    assert _public(RemoteClient) - _public(DatastoreClient) == {"username"}


def test_signatures_match_the_interface():
    from grid.client.remote import RemoteClient

    for cls in (grid.Client, RemoteClient):
        for name in _public(DatastoreClient):
            theirs = getattr(DatastoreClient, name)
            if not callable(theirs):
                assert isinstance(getattr(cls, name), type(theirs)), name
                continue
            ours = inspect.signature(getattr(cls, name))
            assert list(ours.parameters) == list(inspect.signature(theirs).parameters), name


def test_connect_gives_the_server_once_logged_in(team_server, home, monkeypatch):
    from grid.client.remote import RemoteClient
    from tests.team import new_user

    database, url = team_server
    name, key = new_user(database)
    monkeypatch.setenv("GRID_URL", url)
    monkeypatch.setenv("GRID_API_KEY", key)
    with grid.connect(str(home)) as client:
        assert isinstance(client, RemoteClient)
        assert client.username == name
        assert client.list() == []


def test_connect_gives_the_embedded_installation_by_default(home):
    with grid.connect(str(home)) as client:
        assert isinstance(client, DatastoreClient)
        assert client.list() == []
        assert client.parse_ref("cats:3") == ("cats", 3)
        assert client.default_name("s3://bucket/data/cats/") == "cats"
