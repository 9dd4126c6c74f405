"""Login rate limits shared by every auth instance, in Redis.

The rules are the in-memory limiter's (see `auth_service.ratelimit`), and the check and the
reservation are one Lua call, so parallel attempts at several instances cannot all pass the
check before any of them is counted. Each window is a sorted set of attempt times. When
Redis cannot be reached the instance falls back to its own in-memory counters: protection
degrades to per-instance, it never switches off.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

import redis.asyncio as redis
from redis.exceptions import RedisError

from ..ratelimit import Kind, Limits, MemoryLoginLimiter, Reservation

log = logging.getLogger("auth_service.ratelimit")

# KEYS: pair, address, subject. ARGV: now, window, per-pair limit, per-address limit,
# ceiling (0: none), member. Returns 0 with the member added to every key, or the wait.
_RESERVE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local function wait(key, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then return 0 end
  local oldest = redis.call('ZRANGE', key, -limit, -limit, 'WITHSCORES')
  local left = tonumber(oldest[2]) + window - now
  if left > 0 then return math.ceil(left) end
  return 0
end
local per_pair, ceiling = tonumber(ARGV[3]), tonumber(ARGV[5])
if ceiling > 0 and wait(KEYS[3], ceiling) > 0 then per_pair = 1 end
local w = math.max(wait(KEYS[1], per_pair), wait(KEYS[2], tonumber(ARGV[4])))
if w > 0 then return w end
local ttl = math.ceil(window) + 1
local n = 2
if ceiling > 0 then n = 3 end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[6])
  redis.call('EXPIRE', KEYS[i], ttl)
end
return 0
"""


class RedisLoginLimiter:
    def __init__(self, client: redis.Redis, *, prefix: str, limits: Limits) -> None:
        self._redis = client
        self._prefix = prefix
        self._limits = limits
        self._script = client.register_script(_RESERVE)
        self._fallback = MemoryLoginLimiter(limits)

    async def reserve(self, kind: Kind, subject: str, address: str, now: float) -> Reservation:
        token = secrets.token_hex(8)
        per_pair = self._limits.max_failures
        ceiling = self._limits.ceiling if kind == "login" else 0
        try:
            wait = int(
                await self._script(
                    keys=self._keys(kind, subject, address),
                    args=[now, self._limits.window, per_pair, self._limits.max_attempts_per_address, ceiling, token],
                )
            )
        except RedisError as exc:
            log.warning("rate limits: Redis unavailable (%s); using this instance's counters", type(exc).__name__)
            return self._fallback.reserve_now(kind, subject, address, now)
        if wait:
            return Reservation(wait)
        self._fallback.record(kind, subject, address, now)  # history for when Redis goes away
        return Reservation(0, kind, subject, address, now, token)

    async def settle(self, reservation: Reservation, *, failed: bool) -> None:
        await self._fallback.settle(reservation, failed=failed)
        if failed or reservation.retry_after or not reservation.token:
            return
        pair, address, subject = self._keys(reservation.kind, reservation.subject, reservation.address)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(pair, reservation.token)
                pipe.zrem(subject if reservation.kind == "login" else address, reservation.token)
                await pipe.execute()
        except RedisError as exc:
            log.warning("rate limits: Redis unavailable (%s); a success stays counted", type(exc).__name__)

    def _keys(self, kind: Kind, subject: str, address: str) -> list[str]:
        return [
            self._key("pair", f"{kind}\0{subject}\0{address}"),
            self._key(f"addr:{kind}", address),
            self._key(f"subject:{kind}", subject),
        ]

    def _key(self, kind: str, value: str) -> str:
        # Hashed: usernames and addresses are not written into a shared store in clear.
        return f"{self._prefix}login:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"
