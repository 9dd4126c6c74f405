"""Login rate limits shared by every auth instance, in Redis.

Each key (a username, a client address) is a sorted set of attempt times trimmed to the
last `limit` events, so the rule is exactly the in-memory limiter's: the oldest of the
last `limit` events must leave the window before another attempt. When Redis cannot be
reached the instance falls back to its own in-memory counters: protection degrades to
per-instance, it never switches off.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets

import redis.asyncio as redis
from redis.exceptions import RedisError

from ..ratelimit import MemoryLoginLimiter

log = logging.getLogger("auth_service.ratelimit")


class RedisLoginLimiter:
    def __init__(self, client: redis.Redis, *, prefix: str, max_failures: int, max_attempts_per_address: int,
                 window: float) -> None:
        self._redis = client
        self._prefix = prefix
        self._limits = {"fail": max_failures, "addr": max_attempts_per_address}
        self._window = window
        self._fallback = MemoryLoginLimiter(max_failures=max_failures,
                                            max_attempts_per_address=max_attempts_per_address, window=window)

    async def retry_after(self, username_key: str, address: str, now: float) -> int:
        try:
            waits = [await self._wait("fail", username_key, now), await self._wait("addr", address, now)]
        except RedisError as exc:
            log.warning("rate limits: Redis unavailable (%s); using this instance's counters",
                        type(exc).__name__)
            return await self._fallback.retry_after(username_key, address, now)
        return max(waits)

    async def attempted(self, username_key: str, address: str, now: float, *, failed: bool) -> None:
        await self._fallback.attempted(username_key, address, now, failed=failed)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                self._record(pipe, "addr", address, now)
                if failed:
                    self._record(pipe, "fail", username_key, now)
                await pipe.execute()
        except RedisError as exc:
            log.warning("rate limits: Redis unavailable (%s); counted locally", type(exc).__name__)

    def _key(self, kind: str, value: str) -> str:
        # Hashed: usernames and addresses are not written into a shared store in clear.
        return f"{self._prefix}login:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"

    def _record(self, pipe: redis.client.Pipeline, kind: str, value: str, now: float) -> None:
        key = self._key(kind, value)
        pipe.zadd(key, {f"{now!r}:{secrets.token_hex(4)}": now})
        pipe.zremrangebyrank(key, 0, -self._limits[kind] - 1)  # keep the last `limit` events
        pipe.expire(key, math.ceil(self._window) + 1)

    async def _wait(self, kind: str, value: str, now: float) -> int:
        key = self._key(kind, value)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(key)
            pipe.zrange(key, 0, 0, withscores=True)
            count, oldest = await pipe.execute()
        if count < self._limits[kind] or not oldest:
            return 0
        wait = oldest[0][1] + self._window - now
        return math.ceil(wait) if wait > 0 else 0
