"""Revocation fan-out over Redis pub/sub: every replica hears every entry, whichever
instance (or CLI) wrote it, without holding a stream to an auth instance.

Every instance tails the same feed; a `SET NX` per (feed, seq) lets exactly one of them
publish each entry. Heartbeats carry the feed id, the cursor and the time of the read they
vouch for, so replicas detect gaps and confirm they are in sync. Every message is signed:
anyone who can reach Redis can publish, and an unsigned message is dropped. Pull over HTTP stays the fallback: nothing depends on Redis
delivering every message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as redis

from .protocols import RevocationEntry

_CLAIM_SECONDS = 300  # how long an entry's "published" marker lives


def channel(prefix: str) -> str:
    return f"{prefix}revocations"


class RedisPublisher:
    """Publishes each event as a JWS signed with the issuer's current signing key (its own
    `typ`, see `resource_service.revocation_sync.PUSH_TYP`): replicas already trust those
    keys, and drop any message on the channel that is not signed by one."""

    def __init__(self, client: redis.Redis, prefix: str, sign: Callable[[str, dict[str, Any]], str]) -> None:
        self._redis = client
        self._prefix = prefix
        self._channel = channel(prefix)
        self._sign = sign

    async def entry(self, feed_id: str, entry: RevocationEntry) -> None:
        claimed = await self._redis.set(f"{self._prefix}published:{feed_id}:{entry.seq}", 1, nx=True, ex=_CLAIM_SECONDS)
        if claimed:
            await self._redis.publish(self._channel, self._sign("revocation", entry.as_json()))

    async def heartbeat(self, feed_id: str, cursor: int, read_at: float) -> None:
        await self._redis.publish(
            self._channel, self._sign("heartbeat", {"feed": feed_id, "cursor": cursor, "time": round(read_at, 3)})
        )
