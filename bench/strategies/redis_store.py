"""A shared session store: every replica asks Redis, one `GET` per request, for the cookie's session.

Any replica can serve any user and a dying replica loses nothing; what it costs is the
round trip on every request and a store that must itself be scaled and kept up. Login is
one `SET key value EX ttl`, so Redis expires sessions and no replica sweeps. Keys are
`<prefix>:<sid>`, with a prefix per run, so parallel runs and tests never see each other's
sessions and a run's keys can be deleted when it ends (`delete_prefix`).

The connection pool is bounded and blocking (a request waits for a free connection rather
than opening the hundredth socket), as a production pool is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.routing import BaseRoute

from .common import DEFAULT_TTL, Session, new_sid

__all__ = ["DEFAULT_URL", "RedisStore", "delete_prefix"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # no glob characters: the prefix goes into SCAN MATCH
_POOL_SIZE = 32
# Pipeline size for bulk loads: small enough that the loading replica's own RSS barely moves
# (10,000 at once left ~10 MB of freed buffers in the process), large enough to stay fast.
_PIPELINE = 1_000


def _check_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"redis key prefix must match {_PREFIX.pattern}: {prefix!r}")
    return prefix


class RedisStore:
    """Sessions in Redis under `prefix`, reached through one bounded async connection pool."""

    name = "redis"
    pinned = False

    def __init__(self, url: str = DEFAULT_URL, *, prefix: str, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self.prefix = _check_prefix(prefix)
        self._url = url
        self._redis: Redis | None = None
        self._ready = False

    async def start(self) -> None:
        pool = BlockingConnectionPool.from_url(self._url, max_connections=_POOL_SIZE, timeout=5)
        self._redis = Redis.from_pool(pool)
        await self._redis.ping()  # fail at start, not at the first request
        self._ready = True

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    def ready(self) -> bool:
        return self._ready

    def _key(self, sid: str) -> str:
        return f"{self.prefix}:{sid}"

    @property
    def _db(self) -> Redis:
        assert self._redis is not None, "store not started"
        return self._redis

    async def get(self, sid: str) -> Session | None:
        raw = await self._db.get(self._key(sid))
        return None if raw is None else Session.from_json(raw)

    async def create(self, user: str) -> str:
        sid = new_sid()
        session = Session(user, time.time() + self.ttl)
        # NX: never overwrite (a 2**-128 collision would hand one user another's session).
        while not await self._db.set(self._key(sid), session.to_json(), ex=int(self.ttl), nx=True):
            sid = new_sid()
        return sid

    async def bulk(self, count: int) -> None:
        expires = time.time() + self.ttl
        for start in range(0, count, _PIPELINE):
            pipe = self._db.pipeline(transaction=False)
            for i in range(start, min(count, start + _PIPELINE)):
                pipe.set(self._key(new_sid()), Session(f"bulk-{i}", expires).to_json(), ex=int(self.ttl))
            await pipe.execute()

    async def count(self) -> int:
        total = 0
        async for _ in self._db.scan_iter(match=f"{self.prefix}:*", count=10_000):
            total += 1
        return total

    async def facts(self) -> dict[str, Any]:
        """The store's memory is where this strategy's sessions live: report it beside the replica's."""
        memory = await self._db.info("memory")
        return {"redis_used_memory": int(memory["used_memory"]), "redis_prefix": self.prefix}

    def routes(self) -> Sequence[BaseRoute]:
        return ()


def delete_prefix(url: str, prefix: str) -> int:
    """Delete a run's keys (`prefix:*`); returns how many. Synchronous: runners call it after a run."""
    client = SyncRedis.from_url(url)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{_check_prefix(prefix)}:*", count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                deleted += int(client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(client.unlink(*batch))
        return deleted
    finally:
        client.close()
