"""Every error has a stable code of its own, and the exception a server describes with
``to_dict`` is rebuilt as the same type, message and attributes (issue 14's seam)."""

from __future__ import annotations

import inspect
import json

import pytest

from grid import errors as e
from grid.cli.errors import _TABLE


def _classes() -> list[type[e.GridError]]:
    return [c for _, c in inspect.getmembers(e, inspect.isclass) if issubclass(c, e.GridError)]


def test_every_error_class_has_a_unique_code():
    classes = _classes()
    assert len({c.code for c in classes}) == len(classes)
    assert e.codes() == {c.code: c for c in classes}


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_round_trip_through_json(cls):
    original = cls("it went wrong: ☕ \n second line", path="a/b", transient=True, version=3)
    wire = json.loads(json.dumps(original.to_dict()))
    again = e.rebuild(wire["code"], wire["message"], wire["attrs"])
    assert type(again) is cls
    assert str(again) == str(original)
    assert (again.path, again.transient, again.version) == ("a/b", True, 3)


def test_an_unknown_code_is_a_plain_grid_error():
    err = e.rebuild("from_a_newer_server", "something new")
    assert type(err) is e.GridError and err.message == "something new"


def test_a_subclass_without_a_code_of_its_own_is_refused():
    with pytest.raises(TypeError, match="code of its own"):

        class Nameless(e.UsageError):  # inherits "usage"
            pass


def test_the_cli_table_gives_every_error_an_exit_code():
    for cls in _classes():
        assert any(issubclass(cls, row[0]) for row in _TABLE), cls
