"""Password hashing: Argon2id through passlib, always off the event loop.

Hashes run in a pool of their own whose threads have a lower CPU priority than the
event loop's, so a login storm saturating the cores still leaves the loop free to
answer JWKS, discovery and token refreshes promptly. Past a bounded queue, logins are
refused with 503 rather than piling up. An unknown user is checked against a dummy hash
with the same parameters, so a login's duration says nothing about whether the
username exists.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from passlib.hash import argon2

from .errors import Unavailable

# OWASP's minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
T = TypeVar("T")

_HASHER = argon2.using(type="ID", memory_cost=19_456, rounds=2, parallelism=1)

MAX_PASSWORD_LENGTH = 1024  # characters: a bound on work per request, far above any real passphrase
MIN_PASSWORD_LENGTH = 8  # characters, NIST SP 800-63B's floor for a password the user chose
MIN_SECRET_LENGTH = 32  # characters of a client secret: a random value, so about 190 bits or more
_QUEUE_PER_WORKER = 32  # hashes waiting per worker before logins are shed
_NICENESS = 10  # added to the process's own: a service already run under `nice` keeps the gap


def _lower_priority() -> None:
    """Runs in each hashing thread: Linux schedules threads as tasks, so this thread
    alone yields to the event loop. Elsewhere it is a no-op."""
    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + _NICENESS))
    except (AttributeError, OSError):
        pass


class PasswordHasher:
    def __init__(self, concurrency: int) -> None:
        # Each hash takes 19 MiB and a core for ~30 ms: bound how many run at once.
        self._pool = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="argon2", initializer=_lower_priority
        )
        self._limit = concurrency * (_QUEUE_PER_WORKER + 1)
        self._pending = 0
        self._dummy = _HASHER.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        return await self._run(hash_sync, password)

    async def verify(self, password: str, stored: str | None) -> bool:
        """True when `password` matches `stored`; with `stored` None (no such user) the same
        work is done against a dummy hash and False returned."""
        ok = await self._run(_verify, password, stored or self._dummy)
        return bool(ok) and stored is not None

    @staticmethod
    def needs_rehash(stored: str) -> bool:
        """True when `stored` was made with other parameters than today's."""
        return bool(_HASHER.needs_update(stored))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if self._pending >= self._limit:
            raise Unavailable("too many logins in progress; retry shortly", retry_after=1)
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._pending -= 1


def hash_sync(password: str) -> str:
    """For the CLI, which has no event loop to protect."""
    return str(_HASHER.hash(password))


def _verify(password: str, stored: str) -> bool:
    try:
        return bool(_HASHER.verify(password, stored))
    except (ValueError, TypeError):
        return False  # a malformed stored hash fails closed
