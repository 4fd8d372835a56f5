"""Property: any tree of any bytes goes in and comes back out unchanged."""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grid

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=12,
).filter(lambda n: n not in (".", ".."))
contents = st.one_of(
    st.binary(max_size=3000),
    st.binary(min_size=1, max_size=64).map(lambda b: b * 20_000),  # compressible, > 1 chunk
)
trees = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map(tuple), contents, min_size=1, max_size=12
)


def _write(root, tree) -> dict[str, bytes]:
    written = {}
    for parts, data in tree.items():
        path = os.path.join(root, *parts)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        except (IsADirectoryError, NotADirectoryError, FileExistsError):
            continue  # a name used both as a file and a folder: skip that one
        written["/".join(parts)] = data
    return {p: d for p, d in written.items() if os.path.isfile(os.path.join(root, p))}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_any_tree_round_trips(tree):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        written = _write(src, tree)
        if not written:
            return
        with grid.Client(os.path.join(tmp, "home"), fsync=False) as c:
            v = c.create(src, "p")
            assert v.files == len(written)
            for path, data in written.items():
                assert c.read_bytes("p", 1, path) == data
