"""The user lifecycle as one service layer: the CLI calls it today, an admin HTTP API later.

Every change checks its input, applies it to the store, ends the user's sessions where the
change calls for it (through the revocation feed, so every replica hears), and writes one
security event naming the user by `sub` and the `actor` who asked, never by username and
never with a password. Failures are `DirectoryError` values (or the store's `Conflict` for
a taken name) whose messages quote no password.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from .errors import InvalidRequest
from .forms import has_control_characters, parse_scope
from .passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from .revocation import Revoker
from .storage import User
from .storage.protocols import SignInStore, UserStore

security = logging.getLogger("auth_service.security")

MAX_USERNAME_LENGTH = 256  # the users table's column, and what the password grant reads
MAX_USERS_PAGE = 1000  # users per `users()` answer, as the store caps it
MAX_NAME = 200
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")  # a plausible address


class DirectoryError(Exception):
    """A user change refused; the message says why and never quotes a password."""


class NotFound(DirectoryError):
    """No user has that name."""


class Invalid(DirectoryError):
    """Bad input; the message names the field."""


class Hasher(Protocol):
    """What the directory needs of `passwords.PasswordHasher`."""

    async def hash(self, password: str) -> str: ...


class DirectoryStore(UserStore, SignInStore, Protocol):
    """Users, and what they allowed clients (their consents)."""


class Directory:
    def __init__(
        self, users: DirectoryStore, revoker: Revoker, hasher: Hasher, clock: Callable[[], float] = time.time
    ) -> None:
        self._users = users
        self._revoker = revoker
        self._hasher = hasher
        self._clock = clock

    async def add_user(self, username: str, password: str, scope: str, *, actor: str) -> User:
        """Raises Conflict when the name is taken (after NFKC + casefold)."""
        _check_username(username)
        _check_password(password)
        _check_scope(scope)
        user = await self._users.add_user(username, await self._hasher.hash(password), scope, self._now())
        _event("user_added", user, actor)
        return user

    async def users(self, after: str | None = None, limit: int = 100) -> list[User]:
        """One page in username order; the last username of a page asks for the next."""
        if not 1 <= limit <= MAX_USERS_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_USERS_PAGE}")
        return await self._users.list_users(after=after, limit=limit)

    async def user(self, username: str) -> User:
        user = await self._users.user_by_name(username)
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user

    async def set_scope(self, username: str, scope: str, *, actor: str) -> User:
        """What the user may be granted from now on. A session keeps its tokens until they
        expire, but its next refresh is narrowed to this (the refresh grant intersects)."""
        _check_scope(scope)
        user = await self.user(username)
        if not await self._users.set_scope(user.id, scope):
            raise NotFound(f"no user {username!r}")
        _event("user_scope_set", user, actor)
        return replace(user, scope=scope)

    async def set_password(self, username: str, password: str, *, actor: str) -> User:
        """A new password; every token the user holds is revoked, and a login still
        checking the old password gets no session (the store checks the hash it verified)."""
        _check_password(password)
        user = await self.user(username)
        password_hash = await self._hasher.hash(password)
        now = self._now()
        await self._users.set_password_hash(user.id, password_hash, changed_at=now)
        await self._revoker.sub(user.id)
        changed = await self._users.user_by_id(user.id)
        if changed is None:  # removed meanwhile: its tokens are revoked all the same
            raise NotFound(f"no user {username!r}")
        _event("user_password_set", user, actor)
        return changed

    async def set_profile(
        self, username: str, *, name: str | None, email: str | None, email_verified: bool, actor: str
    ) -> User:
        """The OpenID Connect claims `profile` and `email` release (None: the user has none)."""
        if name is not None and (not 1 <= len(name) <= MAX_NAME or has_control_characters(name)):
            raise Invalid(f"name must be 1 to {MAX_NAME} characters without control characters")
        if email is not None and not _EMAIL.fullmatch(email):
            raise Invalid("email must be an address like name@example.com")
        user = await self.user(username)
        verified = email_verified and email is not None
        if not await self._users.set_profile(user.id, name=name, email=email, email_verified=verified):
            raise NotFound(f"no user {username!r}")
        _event("user_profile_set", user, actor)
        return replace(user, name=name, email=email, email_verified=verified)

    async def consents(self, username: str) -> list[dict[str, Any]]:
        """The clients the user allowed (the consent page remembers), with what they allowed."""
        user = await self.user(username)
        return [
            {"client_id": client_id, "scope": scope, "granted_at": granted_at}
            for client_id, scope, granted_at in await self._users.consents(user.id)
        ]

    async def revoke_consent(self, username: str, client_id: str, *, actor: str) -> User:
        """The client asks again at its next sign-in. Its sessions stand: end them with `revoke`."""
        user = await self.user(username)
        if not await self._users.revoke_consent(user.id, client_id):
            raise NotFound(f"user {username!r} has not allowed client {client_id!r}"[:200])
        security.info("consent_revoked", extra={"sub": user.id, "client_id": client_id, "actor": actor})
        return user

    async def disable(self, username: str, *, actor: str) -> User:
        """No more logins or refreshes, and every session ends now."""
        user = await self.user(username)
        now = self._now()
        if not await self._users.set_disabled(user.id, now):
            raise NotFound(f"no user {username!r}")
        await self._revoker.sub(user.id)
        _event("user_disabled", user, actor)
        return replace(user, disabled_at=now)

    async def enable(self, username: str, *, actor: str) -> User:
        """Logins work again; sessions ended by the disable stay ended."""
        user = await self.user(username)
        if not await self._users.set_disabled(user.id, None):
            raise NotFound(f"no user {username!r}")
        _event("user_enabled", user, actor)
        return replace(user, disabled_at=None)

    async def delete(self, username: str, *, actor: str) -> User:
        """Remove the user, then revoke by `sub`: a login racing the removal finds no user
        to start a session for, and every session started before is revoked."""
        user = await self.user(username)
        if not await self._users.remove_user(user.id):
            raise NotFound(f"no user {username!r}")
        await self._revoker.sub(user.id)
        _event("user_deleted", user, actor)
        return user

    def _now(self) -> int:
        return int(self._clock())


def user_view(user: User) -> dict[str, Any]:
    """A user as JSON output shows it: never the password hash."""
    return {
        "username": user.username,
        "sub": user.id,
        "scope": user.scope,
        "disabled": user.disabled_at is not None,
        "disabled_at": user.disabled_at,
        "password_changed_at": user.password_changed_at,
        "name": user.name,
        "email": user.email,
        "email_verified": user.email_verified,
    }


def _event(name: str, user: User, actor: str) -> None:
    security.info(name, extra={"sub": user.id, "actor": actor})


def _check_username(username: str) -> None:
    # The value is never quoted: it may hold control characters, or a password typed in the
    # wrong field.
    if not 1 <= len(username) <= MAX_USERNAME_LENGTH:
        raise Invalid(f"username must be 1 to {MAX_USERNAME_LENGTH} characters")
    if has_control_characters(username):
        raise Invalid("username contains control characters")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password shorter than {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"password longer than {MAX_PASSWORD_LENGTH} characters")


def _check_scope(scope: str) -> None:
    try:
        parse_scope(scope)
    except InvalidRequest:
        raise Invalid("scope must be space-separated scope tokens (RFC 6749 section 3.3)") from None
