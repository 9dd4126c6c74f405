"""Login rate limiting: failures per username and attempts per client address, in a window.

The check runs before any password hashing, so a refused attempt costs almost nothing.
In-process counters serve one instance; the scale-out backend shares them through Redis.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Literal, Protocol

from .errors import RateLimited

if TYPE_CHECKING:
    from .metrics import AuthMetrics

_MAX_TRACKED = 100_000  # keys remembered at once; the oldest are forgotten first
_EVENTS = {"login": "login_rate_limited", "client_secret": "client_auth_rate_limited"}
security = logging.getLogger("auth_service.security")


class LoginLimiter(Protocol):
    async def retry_after(self, username_key: str, address: str, now: float) -> int:
        """0 when a login may be attempted now, else seconds until one may."""

    async def attempted(self, username_key: str, address: str, now: float, *, failed: bool) -> None:
        """Record an attempt (and whether it failed)."""


async def refuse_if_limited(limiter: LoginLimiter, key: str, address: str, *,
                            what: Literal["login", "client_secret"], client_id: str,
                            metrics: AuthMetrics | None) -> None:
    """Raise `RateLimited` (429) when `key` or `address` is over its limit: before any hashing.
    The refusal is logged as a security event and counted, the same way for both kinds."""
    wait = await limiter.retry_after(key, address, time.time())
    if wait:
        security.warning(_EVENTS[what], extra={"client_id": client_id, "retry_after": wait})
        if metrics is not None:
            metrics.rate_limited(what)
        raise RateLimited(wait)


class _Window:
    """Timestamps of events within a sliding window, per key, with bounded memory."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def add(self, key: str, now: float) -> None:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque(maxlen=self.limit)
            if len(self._events) > _MAX_TRACKED:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        events.append(now)

    def retry_after(self, key: str, now: float) -> int:
        events = self._events.get(key)
        if not events or len(events) < self.limit:
            return 0
        wait = events[0] + self.window - now  # the oldest of the last `limit` events must age out
        return math.ceil(wait) if wait > 0 else 0


class MemoryLoginLimiter:
    def __init__(self, *, max_failures: int, max_attempts_per_address: int, window: float) -> None:
        self._failures = _Window(max_failures, window)
        self._attempts = _Window(max_attempts_per_address, window)

    async def retry_after(self, username_key: str, address: str, now: float) -> int:
        return max(self._failures.retry_after(username_key, now), self._attempts.retry_after(address, now))

    async def attempted(self, username_key: str, address: str, now: float, *, failed: bool) -> None:
        self._attempts.add(address, now)
        if failed:
            self._failures.add(username_key, now)
