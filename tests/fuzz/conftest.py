"""The long run (``GRID_FUZZ_EXAMPLES`` set) marks every fuzz test ``slow``."""

from __future__ import annotations

import pytest

from tests.fuzz.fuzzing import LONG_EXAMPLES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if LONG_EXAMPLES:
        for item in items:
            if "tests/fuzz/" in item.nodeid.replace("\\", "/"):
                item.add_marker(pytest.mark.slow)
