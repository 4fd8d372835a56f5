"""Team-mode accounts: users, teams, memberships and API keys.

A key is ``grid_<id>_<secret>``: 12 hex digits of public id (to find its row) and 40
characters of secret (240 random bits). Only the SHA-256 of the whole key is stored: a key is
high-entropy, so a slow password hash would add cost and no safety, and it can never be read
back from the database. Expiry, revocation and a disabled user take effect at the next request,
on every server, because every request looks the key up.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from grid.catalog.catalog import Catalog
from grid.catalog.models import ApiKey, Owner, TeamMember
from grid.errors import ConflictError, InvalidNameError, NotFoundError, UnauthorizedError
from grid.records import ApiKeyInfo, Principal, UserInfo

KEY_PREFIX = "grid_"


def refused_key() -> UnauthorizedError:
    """The one answer to any key that may not do what it asks (nothing to learn by probing)."""
    return UnauthorizedError("the API key is missing, unknown, expired or revoked")


_KEY = re.compile(r"grid_([0-9a-f]{12})_([A-Za-z0-9_-]{40})")
_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ACCOUNT_RULE = "1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


class Accounts:
    """Accounts in the database of ``catalog``."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def _now(self) -> datetime:
        return self._catalog.now()

    def _owner(self, s: Session, name: str, kind: str | None = None) -> Owner:
        owner = s.scalar(select(Owner).where(Owner.name == name))
        if owner is None or (kind is not None and owner.kind != kind):
            what = kind or "account"
            raise NotFoundError(f"no {what} named {name!r}", name=name)
        return owner

    def _info(self, s: Session, owner: Owner) -> UserInfo:
        if owner.kind == "team":
            rows = select(Owner.name).join(TeamMember, TeamMember.user_id == Owner.id)
            names = s.scalars(rows.where(TeamMember.team_id == owner.id))
        else:
            rows = select(Owner.name).join(TeamMember, TeamMember.team_id == Owner.id)
            names = s.scalars(rows.where(TeamMember.user_id == owner.id))
        created = _utc(owner.created_at)
        assert created is not None
        return UserInfo(owner.name, owner.kind, owner.disabled, created, tuple(sorted(names)))

    def _create(self, name: str, kind: str) -> UserInfo:
        if not _ACCOUNT.fullmatch(name):
            raise InvalidNameError(f"invalid {kind} name {name!r}: {ACCOUNT_RULE}")
        with self._catalog.transaction() as s:
            if s.scalar(select(Owner).where(Owner.name == name)) is not None:
                raise ConflictError(f"{name!r} is taken (by a user or a team)")
            owner = Owner(name=name, created_at=self._now(), kind=kind, disabled=False)
            s.add(owner)
            s.flush()
            return self._info(s, owner)

    def create_user(self, name: str) -> UserInfo:
        """Add a user (a name unique among users and teams)."""
        return self._create(name, "user")

    def create_team(self, name: str) -> UserInfo:
        """Add a team."""
        return self._create(name, "team")

    def add_member(self, team: str, user: str) -> UserInfo:
        """Put ``user`` in ``team``; return the team."""
        with self._catalog.transaction() as s:
            t, u = self._owner(s, team, "team"), self._owner(s, user, "user")
            if s.get(TeamMember, (t.id, u.id)) is None:
                s.add(TeamMember(team_id=t.id, user_id=u.id))
                s.flush()
            return self._info(s, t)

    def users(self) -> list[UserInfo]:
        """Every user and team, by name."""
        with self._catalog.transaction() as s:
            owners = s.scalars(select(Owner).order_by(Owner.name)).all()
            return [self._info(s, o) for o in owners]

    def disable_user(self, name: str) -> UserInfo:
        """Refuse every key of ``name`` from now on."""
        with self._catalog.transaction() as s:
            owner = self._owner(s, name, "user")
            owner.disabled = True
            return self._info(s, owner)

    def create_key(
        self, user: str, expires_in: float | None = None, run_id: int | None = None
    ) -> tuple[str, ApiKeyInfo]:
        """A new key for ``user`` (a run key with ``run_id``): (the key, shown this once;
        what can be shown again)."""
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(30)}"
        now = self._now()
        expires = now + timedelta(seconds=expires_in) if expires_in is not None else None
        with self._catalog.transaction() as s:
            owner = self._owner(s, user, "user")
            row = ApiKey(
                id=key_id,
                user_id=owner.id,
                secret_hash=_hash(key),
                created_at=now,
                expires_at=expires,
                revoked_at=None,
                run_id=run_id,
            )
            s.add(row)
        return key, ApiKeyInfo(key_id, user, now, expires, None)

    def keys(self, user: str) -> list[ApiKeyInfo]:
        """``user``'s keys, oldest first (ids and dates only)."""
        with self._catalog.transaction() as s:
            owner = self._owner(s, user, "user")
            rows = s.scalars(
                select(ApiKey).where(ApiKey.user_id == owner.id).order_by(ApiKey.created_at)
            )
            return [
                ApiKeyInfo(
                    r.id,
                    user,
                    _utc(r.created_at) or self._now(),
                    _utc(r.expires_at),
                    _utc(r.revoked_at),
                )
                for r in rows
            ]

    def revoke_key(self, user: str, key_id: str) -> None:
        """Revoke one of ``user``'s keys (another user's key is not found, never named)."""
        with self._catalog.transaction() as s:
            owner = self._owner(s, user, "user")
            row = s.get(ApiKey, key_id)
            if row is None or row.user_id != owner.id:
                raise NotFoundError(f"you have no key {key_id!r}", name=key_id)
            if row.revoked_at is None:
                row.revoked_at = self._now()

    def authenticate(self, key: str | None) -> Principal:
        """Who ``key`` belongs to.

        Raises:
            UnauthorizedError: no key, or an unknown, revoked or expired one, or a disabled
                user's (one message for all: nothing to learn by probing).
        """
        refused = refused_key()
        m = _KEY.fullmatch(key or "")
        if m is None:
            raise refused
        with self._catalog.transaction() as s:
            row = s.get(ApiKey, m.group(1))
            if row is None or not hmac.compare_digest(row.secret_hash, _hash(key or "")):
                raise refused
            expires = _utc(row.expires_at)
            if row.revoked_at is not None or (expires is not None and expires <= self._now()):
                raise refused
            owner = s.get(Owner, row.user_id)
            if owner is None or owner.disabled:
                raise refused
            return Principal(owner.name, self._info(s, owner).teams, row.id, row.run_id)
