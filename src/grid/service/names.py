"""Datastore names and ``NAME[:VERSION]`` references."""

from __future__ import annotations

import re

from grid.errors import InvalidNameError

NAME_RULE = (
    "a name is 1-64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# ASCII digits only: str.isdigit() and int() also take "١" (Arabic-Indic one) or "²". At most
# 19 digits, so that int() never meets a string of thousands (Python refuses those).
_VERSION = re.compile(r"[0-9]{1,19}")
MAX_VERSION = 2**63 - 1
"""The largest version number: the catalog keeps numbers in a signed 64-bit integer."""
VERSION_RULE = f"NAME:VERSION with VERSION an integer from 1 to {MAX_VERSION} in ASCII digits"


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
        InvalidNameError: bad name, or a version that is not an integer from 1 to
            ``MAX_VERSION`` written in ASCII digits.
    """
    name, sep, version = ref.partition(":")
    validate_name(name)
    if not sep:
        return name, None
    if not _VERSION.fullmatch(version) or not 1 <= int(version) <= MAX_VERSION:
        raise InvalidNameError(
            f"invalid version {version!r} in {ref!r}: versions are integers from 1 to "
            f"{MAX_VERSION} (ASCII digits)",
            rule=VERSION_RULE,
        )
    return name, int(version)
