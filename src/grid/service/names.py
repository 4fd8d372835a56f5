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


_OWNER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
OWNER_RULE = "OWNER/NAME names a datastore of a team (or user) in team mode"


def split_owner(ref_name: str) -> tuple[str | None, str]:
    """``OWNER/NAME`` -> (owner, name); a plain ``NAME`` -> (None, name). Both are checked.

    Raises:
        InvalidNameError: a bad owner or name.
    """
    owner, sep, name = ref_name.rpartition("/")
    if not sep:
        return None, validate_name(ref_name)
    if not _OWNER.match(owner):
        raise InvalidNameError(f"invalid owner {owner!r} in {ref_name!r}", rule=OWNER_RULE)
    return owner, validate_name(name)


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid datastore name.

    Raises:
        InvalidNameError: with the rule in the message.
    """
    if not _NAME.match(name):
        raise InvalidNameError(f"invalid datastore name {name!r}: {NAME_RULE}", rule=NAME_RULE)
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``[OWNER/]NAME[:VERSION]`` into the name (with its owner, if given) and the
    version number (None: not given).

    Raises:
        InvalidNameError: bad name, or a version that is not an integer from 1 to
            ``MAX_VERSION`` written in ASCII digits.
    """
    name, sep, version = ref.partition(":")
    split_owner(name)
    if not sep:
        return name, None
    if not _VERSION.fullmatch(version) or not 1 <= int(version) <= MAX_VERSION:
        raise InvalidNameError(
            f"invalid version {version!r} in {ref!r}: versions are integers from 1 to "
            f"{MAX_VERSION} (ASCII digits)",
            rule=VERSION_RULE,
        )
    return name, int(version)
