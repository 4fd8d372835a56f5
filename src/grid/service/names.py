"""Datastore names and ``NAME[:VERSION]`` references."""

from __future__ import annotations

import re

from grid.errors import InvalidNameError

NAME_RULE = (
    "a name is 1-64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid datastore name.

    Raises:
        InvalidNameError: with the rule in the message.
    """
    if not _NAME.match(name):
        raise InvalidNameError(f"invalid datastore name {name!r}: {NAME_RULE}", rule=NAME_RULE)
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``NAME[:VERSION]`` into the name and the version number (None: not given).

    Raises:
        InvalidNameError: bad name, or a version that is not a positive integer.
    """
    name, sep, version = ref.partition(":")
    validate_name(name)
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidNameError(
            f"invalid version {version!r} in {ref!r}: versions are integers from 1",
            rule="NAME:VERSION with VERSION an integer >= 1",
        )
    return name, int(version)
