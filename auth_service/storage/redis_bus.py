"""Revocation fan-out over Redis pub/sub: every replica hears every entry, whichever
instance (or CLI) wrote it, without holding a stream to an auth instance.

Every instance tails the same feed; a `SET NX` per (feed, seq) lets exactly one of them
publish each entry. Heartbeats carry the feed id and cursor so replicas detect gaps and
confirm they are in sync. Pull over HTTP stays the fallback: nothing depends on Redis
delivering every message.
"""

from __future__ import annotations

import json

import redis.asyncio as redis

from .protocols import RevocationEntry

_CLAIM_SECONDS = 300  # how long an entry's "published" marker lives


def channel(prefix: str) -> str:
    return f"{prefix}revocations"


class RedisPublisher:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._channel = channel(prefix)

    async def entry(self, feed_id: str, entry: RevocationEntry) -> None:
        claimed = await self._redis.set(f"{self._prefix}published:{feed_id}:{entry.seq}", 1, nx=True,
                                        ex=_CLAIM_SECONDS)
        if claimed:
            await self._redis.publish(self._channel, json.dumps({"event": "revocation", "data": entry.as_json()}))

    async def heartbeat(self, feed_id: str, cursor: int) -> None:
        await self._redis.publish(self._channel, json.dumps(
            {"event": "heartbeat", "data": {"feed": feed_id, "cursor": cursor}}))
