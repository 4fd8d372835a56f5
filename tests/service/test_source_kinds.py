"""A new kind of source is one row in ``grid.sources.factory.KINDS``: the create, its
progress, its name and its clean-up come from the ``Source`` protocol, never from the
concrete class."""

from __future__ import annotations

import io
import stat
from collections.abc import Iterator
from typing import ClassVar

import pytest

import grid
from grid.sources import factory
from grid.sources.factory import Kind, default_name
from grid.tree import SourceDefaults, SourceEntry


class Generated(SourceDefaults):
    """``gen://N``: N small files, made up as they are read."""

    sequential = False
    noun = "generator"
    workers = 3
    closed: ClassVar[list[str]] = []

    def __init__(self, path: str) -> None:
        self.path, self.count = path, int(path.removeprefix("gen://") or 0)

    def is_empty(self) -> bool:
        return self.count == 0

    def entries(self) -> Iterator[SourceEntry]:
        for i in range(self.count):
            yield SourceEntry("", f"f{i:04}", stat.S_IFREG | 0o644, len(_body(i)), 0)

    def cancel(self) -> None:
        """Nothing blocks."""

    def open(self, entry: SourceEntry) -> io.BytesIO:
        return io.BytesIO(_body(int(entry.name[1:])))

    def close(self) -> None:
        Generated.closed.append(self.path)

    def root_mtime_ns(self) -> int:
        return 7_000_000_000


def _body(i: int) -> bytes:
    return f"file {i}\n".encode() * (i + 1)


@pytest.fixture
def generated(monkeypatch):
    Generated.closed = []
    kind = Kind(
        lambda path, _options: path.startswith("gen://"),
        lambda path: "generated",
        lambda path, _warn, _options, _place: (Generated(path), path),
    )
    monkeypatch.setattr(factory, "KINDS", [kind, *factory.KINDS])


def test_a_new_kind_of_source_creates_versions_without_any_other_edit(client, generated):
    assert default_name("gen://3") == "generated"
    info = client.create("gen://25")
    assert (info.datastore, info.number, info.files) == ("generated", 1, 25)
    assert info.source == "gen://25"
    assert client.read_bytes("generated", 1, "f0007") == _body(7)
    assert [f.path for f in client.ls("generated", 1, "")][:2] == ["f0000", "f0001"]
    assert client.verify("generated", 1).ok
    assert Generated.closed == ["gen://25"]  # released once the create is done


def test_an_empty_source_of_a_new_kind_is_refused_in_its_own_words(client, generated):
    with pytest.raises(grid.UsageError, match="gen://0 is an empty generator: nothing to store"):
        client.create("gen://0", "generated")
    assert client.list() == []  # no version was allocated
    assert Generated.closed == ["gen://0"]


def test_unknown_schemes_still_fall_through_to_paths_and_are_refused(client, generated):
    with pytest.raises(grid.UsageError, match="ftp:// is not supported"):
        client.create("ftp://example/x", "x")
