"""`grant_type=password` (RFC 6749 section 4.3): a username and password for a login session.

The attempt is reserved against the login limits before the hash; the session (refresh
family) is stored only if what the hash checked still stands when it is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ..clients import Caller
from ..clock import Clock
from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest
from ..forms import Form, require
from ..metrics import Metrics
from ..passwords import MAX_PASSWORD_LENGTH, PasswordHasher
from ..ratelimit import LoginLimiter, reserve_or_refuse
from ..storage import Credential, FamilyStore, RefreshRecord, RevocationStore, UserStore
from ..storage.sql import username_key
from ..tokens import TokenMinter, new_id
from .common import Tokens, audience, client_scope, grant_scope, requested_resource, requested_scope, security

MAX_USERNAME_LENGTH = 256


@dataclass(frozen=True, slots=True)
class PasswordRequest:
    username: str
    password: str
    scope: frozenset[str]
    resource: str | None

    @classmethod
    def parse(cls, form: Form) -> PasswordRequest:
        username, password = require(form, "username"), require(form, "password")
        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            raise InvalidRequest("username or password too long")
        return cls(username, password, requested_scope(form), requested_resource(form))


class PasswordGrant:
    def __init__(
        self,
        *,
        settings: Settings,
        users: UserStore,
        families: FamilyStore,
        revocations: RevocationStore,
        minter: TokenMinter,
        hasher: PasswordHasher,
        limiter: LoginLimiter,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._users = users
        self._families = families
        self._revocations = revocations
        self._minter = minter
        self._hasher = hasher
        self._limiter = limiter
        self._clock = clock
        self._metrics = metrics
        self._background: set[asyncio.Task[None]] = set()

    async def __call__(self, form: Form, caller: Caller, address: str) -> Tokens:
        return await self.issue(PasswordRequest.parse(form), caller, address)

    async def issue(self, request: PasswordRequest, caller: Caller, address: str) -> Tokens:
        aud = audience(caller.client, request.resource, self._settings.audience)  # refused before any hash
        attempt = await reserve_or_refuse(
            self._limiter,
            "login",
            username_key(request.username),
            address,
            self._clock(),
            client_id=caller.client_id,
            metrics=self._metrics,
        )
        try:
            # Before the check: a `sub` revocation appended after this voids the login.
            _, feed_head = await self._revocations.feed_head()
            user = await self._users.user_by_name(request.username)
            ok = await self._hasher.verify(request.password, user.password_hash if user else None)
        except Exception:  # never judged (the store failed): the attempt is given back
            await self._limiter.settle(attempt, failed=False)
            raise
        await self._limiter.settle(attempt, failed=not ok)
        if not ok or user is None or user.disabled_at is not None:
            self._metrics.login_failed()
            # The looked-up sub, never the name typed: a password typed into the username
            # field must not end up in the log.
            security.info(
                "login_failure", extra={"client_id": caller.client_id, "sub": user.id if user is not None else None}
            )
            raise InvalidGrant("invalid username or password")
        scope = grant_scope(request.scope, client_scope(caller.client, user.scope))
        now = int(self._clock())
        floor = await self._revocations.revoked_before(user.id)
        sid = new_id()
        refresh = self._minter.refresh_token(
            sub=user.id,
            client_id=caller.client_id,
            scope=scope,
            sid=sid,
            now=now,
            iat_floor=floor,
            not_after=now + self._settings.session_max_lifetime,
        )
        record = RefreshRecord(
            jti=refresh.jti,
            sid=sid,
            sub=user.id,
            client_id=caller.client_id,
            scope=scope,
            issued_at=refresh.iat,
            expires_at=refresh.exp,
            used_at=None,
            family_revoked_at=None,
            audience=aud,
        )
        if not await self._families.start_family(record, Credential(user.password_hash, feed_head)):
            # The password changed, the user was disabled or removed, or their sessions were
            # revoked while this login was hashing: it must not outlive what it checked.
            security.warning("login_superseded", extra={"sub": user.id, "client_id": caller.client_id})
            raise InvalidGrant("the account changed during login; log in again")
        if self._hasher.needs_rehash(user.password_hash):
            self._spawn(self._rehash(user.id, request.password, user.password_hash))
        access = self._minter.access_token(
            sub=user.id,
            client_id=caller.client_id,
            scope=scope,
            audience=aud,
            sid=sid,
            username=user.username,
            now=now,
            iat_floor=floor,
        )
        security.info("login_success", extra={"sub": user.id, "sid": sid, "client_id": caller.client_id})
        return Tokens(access, scope, refresh)

    async def _rehash(self, sub: str, password: str, old_hash: str) -> None:
        await self._users.set_password_hash(sub, await self._hasher.hash(password), changed_at=None, replaces=old_hash)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
