"""One password check for every way a person signs in: the password grant at `/token` and
the hosted login page. Both reserve an attempt against the same limits before the hash,
hash off the event loop, and answer an unknown user and a wrong password alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .errors import InvalidGrant
from .metrics import Metrics
from .passwords import PasswordHasher
from .ratelimit import LoginLimiter, reserve_or_refuse
from .storage import Credential, RevocationStore, User, UserStore
from .storage.sql import username_key

security = logging.getLogger("auth_service.security")

BAD_CREDENTIALS = "invalid username or password"


@dataclass(frozen=True, slots=True)
class CheckedLogin:
    user: User
    credential: Credential  # what a session started from this login must still match when stored


class PasswordCheck:
    def __init__(
        self,
        *,
        users: UserStore,
        revocations: RevocationStore,
        hasher: PasswordHasher,
        limiter: LoginLimiter,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._users = users
        self._revocations = revocations
        self._hasher = hasher
        self._limiter = limiter
        self._clock = clock
        self._metrics = metrics
        self._background: set[asyncio.Task[None]] = set()

    async def check(self, username: str, password: str, *, client_id: str, address: str) -> CheckedLogin:
        """The enabled user these credentials name, or `InvalidGrant` (one text for every
        failure) or `RateLimited` (before any hash)."""
        attempt = await reserve_or_refuse(
            self._limiter,
            "login",
            username_key(username),
            address,
            self._clock(),
            client_id=client_id,
            metrics=self._metrics,
        )
        try:
            # Before the check: a `sub` revocation appended after this voids the login.
            _, feed_head = await self._revocations.feed_head()
            user = await self._users.user_by_name(username)
            ok = await self._hasher.verify(password, user.password_hash if user else None)
        except Exception:  # never judged (the store failed): the attempt is given back
            await self._limiter.settle(attempt, failed=False)
            raise
        await self._limiter.settle(attempt, failed=not ok)
        if not ok or user is None or user.disabled_at is not None:
            self._metrics.login_failed()
            # The looked-up sub, never the name typed: a password typed into the username
            # field must not end up in the log.
            security.info("login_failure", extra={"client_id": client_id, "sub": user.id if user is not None else None})
            raise InvalidGrant(BAD_CREDENTIALS)
        if self._hasher.needs_rehash(user.password_hash):
            self._spawn(self._rehash(user.id, password, user.password_hash))
        return CheckedLogin(user, Credential(user.password_hash, feed_head))

    async def _rehash(self, sub: str, password: str, old_hash: str) -> None:
        await self._users.set_password_hash(sub, await self._hasher.hash(password), changed_at=None, replaces=old_hash)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
