"""Password hashing: Argon2id through passlib, always off the event loop.

An unknown user is checked against a dummy hash with the same parameters, so a login's
duration says nothing about whether the username exists.
"""

from __future__ import annotations

import asyncio
import secrets

from passlib.hash import argon2

# OWASP's minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
_HASHER = argon2.using(type="ID", memory_cost=19_456, rounds=2, parallelism=1)

MAX_PASSWORD_LENGTH = 1024  # characters: a bound on work per request, far above any real passphrase


class PasswordHasher:
    def __init__(self, concurrency: int) -> None:
        # Each hash takes 19 MiB and a core for ~30 ms: bound how many run at once so a
        # login storm queues instead of exhausting memory and starving the event loop.
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy = _HASHER.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(_HASHER.hash, password)

    async def verify(self, password: str, stored: str | None) -> bool:
        """True when `password` matches `stored`; with `stored` None (no such user) the same
        work is done against a dummy hash and False returned."""
        async with self._slots:
            ok = await asyncio.to_thread(_verify, password, stored or self._dummy)
        return ok and stored is not None

    @staticmethod
    def needs_rehash(stored: str) -> bool:
        """True when `stored` was made with other parameters than today's."""
        return bool(_HASHER.needs_update(stored))


def hash_sync(password: str) -> str:
    """For the CLI, which has no event loop to protect."""
    return _HASHER.hash(password)


def _verify(password: str, stored: str) -> bool:
    try:
        return bool(_HASHER.verify(password, stored))
    except (ValueError, TypeError):
        return False  # a malformed stored hash fails closed
