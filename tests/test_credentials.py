"""The credentials file on its own: where it lives, who wins (environment or file), how it is
written (private, atomic) and how a damaged or exposed one is refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from grid import errors
from grid.client import credentials
from grid.client.credentials import Credentials

ALICE = Credentials("http://a.example:8080", "alice", "grid_aaaaaaaaaaaa_secret")


@pytest.fixture
def env(tmp_path):
    return {"GRID_CONFIG_DIR": str(tmp_path / "config"), "HOME": str(tmp_path / "home")}


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_where_the_file_lives(tmp_path):
    home = str(tmp_path)
    assert credentials.credentials_path({"GRID_CONFIG_DIR": "/etc/g"}) == "/etc/g/credentials.json"
    assert credentials.credentials_path({"XDG_CONFIG_HOME": "/x", "HOME": home}) == (
        "/x/grid/credentials.json"
    )
    default = f"{home}/.config/grid/credentials.json"
    assert credentials.credentials_path({"HOME": home}) == default
    assert credentials.credentials_path({"XDG_CONFIG_HOME": "rel", "HOME": home}) == default
    assert credentials.credentials_path({"GRID_CONFIG_DIR": "", "HOME": home}) == default


def test_save_writes_a_private_file_atomically_and_load_reads_it(env, tmp_path):
    old = os.umask(0)  # a lax umask must not make the file readable by others
    try:
        path = credentials.save(ALICE, env)
    finally:
        os.umask(old)
    assert path == str(tmp_path / "config" / "credentials.json")
    assert _mode(path) == 0o600 and _mode(os.path.dirname(path)) == 0o700
    assert json.loads(Path(path).read_text()) == {
        "url": ALICE.url,
        "username": "alice",
        "api_key": ALICE.api_key,
    }
    assert credentials.load(env) == ALICE
    bob = Credentials("http://b.example", "bob", "grid_bbbbbbbbbbbb_secret")
    assert credentials.save(bob, env) == path  # replaced, not appended to
    assert credentials.load(env) == bob
    assert os.listdir(os.path.dirname(path)) == ["credentials.json"]  # no temporary left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(env, monkeypatch):
    path = credentials.save(ALICE, env)

    def broken(*_a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(errors.GridError, match="No space left on device; set GRID_CONFIG_DIR"):
        credentials.save(Credentials("http://x", "x", "grid_x_y"), env)
    monkeypatch.undo()
    assert credentials.load(env) == ALICE
    assert os.listdir(os.path.dirname(path)) == ["credentials.json"]


def test_a_folder_that_cannot_be_made_is_one_error(env, tmp_path):
    (tmp_path / "config").write_text("a file, not a folder")
    with pytest.raises(errors.GridError, match="cannot save the credentials"):
        credentials.save(ALICE, env)


def test_nothing_saved_and_nothing_in_the_environment_is_none(env):
    assert credentials.load(env) is None
    assert credentials.remove(env) is False


def test_the_environment_wins_over_the_file(env):
    credentials.save(ALICE, env)
    both = {**env, "GRID_URL": "http://e.example/", "GRID_API_KEY": "grid_e_k"}
    assert credentials.load(both) == Credentials("http://e.example", "", "grid_e_k")
    named = {**both, "GRID_USERNAME": "erin"}
    assert credentials.load(named) == Credentials("http://e.example", "erin", "grid_e_k")
    key_only = {**env, "GRID_API_KEY": "grid_e_k"}
    assert credentials.load(key_only) == Credentials(ALICE.url, "", "grid_e_k")
    url_only = {**env, "GRID_URL": "http://e.example"}
    assert credentials.load(url_only) == Credentials("http://e.example", "alice", ALICE.api_key)


def test_the_environment_alone(env):
    both = {**env, "GRID_URL": "http://e.example", "GRID_API_KEY": "grid_e_k"}
    assert credentials.load(both) == Credentials("http://e.example", "", "grid_e_k")
    assert credentials.load({**env, "GRID_URL": "http://e.example"}) is None
    with pytest.raises(errors.UsageError, match="GRID_API_KEY is set but GRID_URL is not"):
        credentials.load({**env, "GRID_API_KEY": "grid_e_k"})


@pytest.mark.parametrize(
    "content, why",
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"url": "http://a", "username": "alice"}', "no valid api_key"),
        (b'{"url": "", "username": "alice", "api_key": "k"}', "no valid url"),
        (b'{"url": "http://a", "username": 7, "api_key": "k"}', "no valid text fields"),
    ],
)
def test_a_damaged_file_names_itself_and_the_way_out(env, content, why):
    path = credentials.credentials_path(env)
    os.makedirs(os.path.dirname(path))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(errors.UsageError) as damaged:
        credentials.load(env)
    assert str(damaged.value) == f"{path} is damaged ({why}): run grid login again"


@pytest.mark.parametrize("mode, how", [(0o644, "readable"), (0o640, "readable"),
                                       (0o620, "writable")])  # fmt: skip
def test_a_file_others_can_open_is_refused(env, mode, how):
    path = credentials.save(ALICE, env)
    os.chmod(path, mode)
    with pytest.raises(errors.UsageError, match=f"is {how} by others") as exposed:
        credentials.load(env)
    assert path in str(exposed.value) and "chmod 600 it or grid login again" in str(exposed.value)
    os.chmod(path, 0o600)
    assert credentials.load(env) == ALICE


def test_a_folder_in_place_of_the_file_is_refused(env):
    os.makedirs(credentials.credentials_path(env))
    with pytest.raises(errors.UsageError, match="grid login again"):
        credentials.load(env)


def test_remove(env):
    path = credentials.save(ALICE, env)
    assert credentials.remove(env) is True
    assert not os.path.exists(path)
    assert credentials.remove(env) is False
    assert credentials.load(env) is None
