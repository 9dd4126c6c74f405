"""Login rate limits: failures per username, attempts per address, in a sliding window.

The same rules hold for the in-process limiter and the Redis one several instances share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from auth_service.ratelimit import LoginLimiter, MemoryLoginLimiter
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    clients = []

    def build(**limits: int) -> LoginLimiter:
        if request.param == "memory":
            return MemoryLoginLimiter(window=60, **limits)  # type: ignore[arg-type]
        import redis.asyncio as redis

        from auth_service.storage.redis_limits import RedisLoginLimiter

        client = redis.from_url(REDIS_URL)
        clients.append(client)
        return RedisLoginLimiter(client, prefix=request.getfixturevalue("redis_prefix"), window=60,
                                 **limits)  # type: ignore[arg-type]

    yield build
    for client in clients:
        await client.aclose()


async def test_failures_past_the_limit_lock_the_username_until_the_oldest_ages_out(make) -> None:
    limiter = make(max_failures=3, max_attempts_per_address=100)
    for t in (0, 10, 20):
        assert await limiter.retry_after("alice", "1.2.3.4", t) == 0
        await limiter.attempted("alice", "1.2.3.4", t, failed=True)
    assert await limiter.retry_after("alice", "5.6.7.8", 30) == 30  # from any address
    assert await limiter.retry_after("bob", "1.2.3.4", 30) == 0  # other users unaffected
    assert await limiter.retry_after("alice", "1.2.3.4", 60) == 0


async def test_successful_logins_do_not_count_as_failures(make) -> None:
    limiter = make(max_failures=2, max_attempts_per_address=100)
    for t in range(10):
        await limiter.attempted("alice", "1.2.3.4", t, failed=False)
    assert await limiter.retry_after("alice", "1.2.3.4", 10) == 0


async def test_attempts_per_address_are_limited_across_usernames(make) -> None:
    limiter = make(max_failures=100, max_attempts_per_address=5)
    for i in range(5):
        await limiter.attempted(f"user{i}", "1.2.3.4", 0, failed=False)
    assert await limiter.retry_after("someone", "1.2.3.4", 1) == 59
    assert await limiter.retry_after("someone", "9.9.9.9", 1) == 0


async def test_two_redis_limiters_share_their_counts(redis_prefix: str) -> None:
    import redis.asyncio as redis

    from auth_service.storage.redis_limits import RedisLoginLimiter

    client = redis.from_url(REDIS_URL)
    a, b = (RedisLoginLimiter(client, prefix=redis_prefix, max_failures=2, max_attempts_per_address=100,
                              window=60) for _ in range(2))
    await a.attempted("alice", "1.1.1.1", 0, failed=True)
    await b.attempted("alice", "2.2.2.2", 1, failed=True)
    assert await a.retry_after("alice", "3.3.3.3", 2) == 58
    await client.aclose()


async def test_with_redis_down_each_instance_still_limits_on_its_own() -> None:
    import redis.asyncio as redis

    from auth_service.storage.redis_limits import RedisLoginLimiter

    client = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing listens there
    limiter = RedisLoginLimiter(client, prefix="x:", max_failures=2, max_attempts_per_address=100, window=60)
    for t in (0, 1):
        await limiter.attempted("alice", "1.1.1.1", t, failed=True)
    assert await limiter.retry_after("alice", "1.1.1.1", 2) == 58
    await client.aclose()
