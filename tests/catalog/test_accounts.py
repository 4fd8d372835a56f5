"""Team-mode accounts over SQLite and PostgreSQL: users, teams, keys shown once and stored
only as a hash, expiry, revocation and disabled users refused at once."""

from __future__ import annotations

import pathlib
import time

import pytest

from grid.catalog import Accounts, Catalog
from grid.errors import ConflictError, InvalidNameError, NotFoundError, UnauthorizedError


@pytest.fixture(params=["sqlite", "postgresql"])
def accounts(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'catalog.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    catalog = Catalog(url)
    yield Accounts(catalog), url
    catalog.close()


def test_users_teams_and_keys(accounts):
    acc, _url = accounts
    acc.create_user("alice")
    acc.create_user("bob")
    acc.create_team("vision")
    acc.add_member("vision", "alice")
    with pytest.raises(ConflictError):
        acc.create_team("alice")  # one namespace for users and teams
    for bad in ("", "Alice", "a/b", "x" * 65, "-a", "é"):
        with pytest.raises(InvalidNameError):
            acc.create_user(bad)
    key, info = acc.create_key("alice")
    assert key.startswith("grid_") and len(key) > 50 and info.id in key
    who = acc.authenticate(key)
    assert (who.user, who.teams, who.key_id) == ("alice", ("vision",), info.id)
    assert acc.authenticate(acc.create_key("bob")[0]).teams == ()
    names = {u.name: u for u in acc.users()}
    assert names["vision"].kind == "team" and names["vision"].teams == ("alice",)
    assert [k.id for k in acc.keys("alice")] == [info.id]


def test_refused_keys_all_look_the_same(accounts):
    acc, _url = accounts
    acc.create_user("alice")
    good, info = acc.create_key("alice")
    short, _ = acc.create_key("alice", expires_in=0.5)
    revoked, revoked_info = acc.create_key("alice")
    acc.revoke_key("alice", revoked_info.id)
    time.sleep(0.6)
    forged = good[:-1] + ("A" if good[-1] != "A" else "B")
    for key in (None, "", "nonsense", forged, short, revoked, good + "x"):
        with pytest.raises(UnauthorizedError) as refused:
            acc.authenticate(key)
        assert str(refused.value) == "the API key is missing, unknown, expired or revoked"
    assert acc.authenticate(good).user == "alice"
    acc.create_user("bob")
    with pytest.raises(NotFoundError):
        acc.revoke_key("bob", info.id)  # another user's key is not found, never named
    assert acc.authenticate(good).user == "alice"
    acc.disable_user("alice")
    with pytest.raises(UnauthorizedError):
        acc.authenticate(good)


def test_the_database_never_holds_a_key(accounts):
    acc, url = accounts
    acc.create_user("alice")
    key, _ = acc.create_key("alice")
    secret = key.split("_", 2)[2]
    if url.startswith("sqlite:///"):
        path = pathlib.Path(url.removeprefix("sqlite:///"))
        files = [path, path.with_name(path.name + "-wal")]  # the rows may be in either
        dump = b"".join(f.read_bytes() for f in files if f.exists())
        assert key.split("_")[1].encode() in dump  # the key's id is there: the dump is real
    else:
        import psycopg

        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            dump = repr(conn.execute("SELECT * FROM api_keys").fetchall()).encode()
    assert secret.encode() not in dump and key.encode() not in dump
