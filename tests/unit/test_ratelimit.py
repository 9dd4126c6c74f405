"""Login rate limits: reserved before the hash, keyed so a stranger cannot lock a victim out.

The same rules hold for the in-process limiter and the Redis one several instances share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from auth_service.ratelimit import Limits, LoginLimiter, MemoryLoginLimiter, Reservation, address_bucket
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.anyio

Make = Callable[..., LoginLimiter]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    clients = []

    def build(max_failures: int = 5, max_attempts_per_address: int = 100, ceiling: int = 100) -> LoginLimiter:
        limits = Limits(
            max_failures=max_failures, max_attempts_per_address=max_attempts_per_address, ceiling=ceiling, window=60
        )
        if request.param == "memory":
            return MemoryLoginLimiter(limits)
        import redis.asyncio as redis

        from auth_service.storage.redis_limits import RedisLoginLimiter

        client = redis.from_url(REDIS_URL)
        clients.append(client)
        return RedisLoginLimiter(client, prefix=request.getfixturevalue("redis_prefix"), limits=limits)

    yield build
    for client in clients:
        await client.aclose()


async def fail(limiter: LoginLimiter, subject: str, address: str, t: float) -> Reservation:
    held = await limiter.reserve("login", subject, address, t)
    assert held.retry_after == 0
    await limiter.settle(held, failed=True)
    return held


async def test_failures_lock_the_username_at_that_address_only_until_the_oldest_ages_out(make: Make) -> None:
    limiter = make(max_failures=3)
    for t in (0, 10, 20):
        await fail(limiter, "alice", "1.2.3.4", t)
    assert (await limiter.reserve("login", "alice", "1.2.3.4", 30)).retry_after == 30
    assert (await limiter.reserve("login", "alice", "5.6.7.8", 30)).retry_after == 0  # the victim's address
    assert (await limiter.reserve("login", "bob", "1.2.3.4", 30)).retry_after == 0  # other users unaffected
    assert (await limiter.reserve("login", "alice", "1.2.3.4", 61)).retry_after == 0


async def test_a_reservation_counts_as_a_failure_until_it_is_settled(make: Make) -> None:
    limiter = make(max_failures=2)
    held = [await limiter.reserve("login", "alice", "1.2.3.4", 0) for _ in range(2)]
    assert [h.retry_after for h in held] == [0, 0]
    assert (await limiter.reserve("login", "alice", "1.2.3.4", 1)).retry_after == 59  # nothing hashed yet
    await limiter.settle(held[0], failed=False)
    assert (await limiter.reserve("login", "alice", "1.2.3.4", 2)).retry_after == 0


async def test_parallel_reservations_never_pass_the_limit(make: Make) -> None:
    limiter = make(max_failures=5)
    held = await asyncio.gather(*(limiter.reserve("login", "alice", "1.2.3.4", 0) for _ in range(40)))
    assert sum(1 for h in held if h.retry_after == 0) == 5


async def test_successful_logins_do_not_count_as_failures(make: Make) -> None:
    limiter = make(max_failures=2)
    for t in range(10):
        await limiter.settle(await limiter.reserve("login", "alice", "1.2.3.4", t), failed=False)
    assert (await limiter.reserve("login", "alice", "1.2.3.4", 10)).retry_after == 0


async def test_attempts_per_address_are_limited_across_usernames(make: Make) -> None:
    limiter = make(max_attempts_per_address=5)
    for i in range(5):
        await limiter.settle(await limiter.reserve("login", f"user{i}", "1.2.3.4", 0), failed=False)
    assert (await limiter.reserve("login", "someone", "1.2.3.4", 1)).retry_after == 59
    assert (await limiter.reserve("login", "someone", "9.9.9.9", 1)).retry_after == 0


async def test_past_the_ceiling_each_address_gets_one_guess_and_a_fresh_address_still_gets_in(make: Make) -> None:
    limiter = make(max_failures=5, ceiling=4)
    for i in range(4):  # a distributed guesser spends the account's ceiling
        await fail(limiter, "alice", f"10.0.0.{i}", i)
    await fail(limiter, "alice", "10.0.1.1", 5)  # throttled, not refused: one guess per address
    assert (await limiter.reserve("login", "alice", "10.0.1.1", 6)).retry_after == 59
    victim = await limiter.reserve("login", "alice", "192.0.2.7", 7)
    assert victim.retry_after == 0


async def test_client_secrets_count_failures_per_address_and_successes_are_free(make: Make) -> None:
    limiter = make(max_failures=2, max_attempts_per_address=3)
    for t in range(10):  # a busy confidential client is never throttled by its own successes
        await limiter.settle(await limiter.reserve("client_secret", "api", "1.2.3.4", t), failed=False)
    for t in (10, 11):
        held = await limiter.reserve("client_secret", "api", "6.6.6.6", t)
        await limiter.settle(held, failed=True)
    assert (await limiter.reserve("client_secret", "api", "6.6.6.6", 12)).retry_after > 0
    assert (await limiter.reserve("client_secret", "api", "1.2.3.4", 12)).retry_after == 0


def test_ipv6_addresses_count_by_their_slash_64() -> None:
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_bucket("127.0.0.2") == "127.0.0.2"
    assert address_bucket("unknown") == "unknown"


async def test_two_redis_limiters_share_their_counts(redis_prefix: str) -> None:
    import redis.asyncio as redis

    from auth_service.storage.redis_limits import RedisLoginLimiter

    client = redis.from_url(REDIS_URL)
    limits = Limits(max_failures=2, max_attempts_per_address=100, ceiling=100, window=60)
    a, b = (RedisLoginLimiter(client, prefix=redis_prefix, limits=limits) for _ in range(2))
    await fail(a, "alice", "1.1.1.1", 0)
    await fail(b, "alice", "1.1.1.1", 1)
    assert (await a.reserve("login", "alice", "1.1.1.1", 2)).retry_after == 58
    await client.aclose()


async def test_with_redis_down_each_instance_still_limits_on_its_own() -> None:
    import redis.asyncio as redis

    from auth_service.storage.redis_limits import RedisLoginLimiter

    client = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing listens there
    limits = Limits(max_failures=2, max_attempts_per_address=100, ceiling=100, window=60)
    limiter = RedisLoginLimiter(client, prefix="x:", limits=limits)
    for t in (0, 1):
        await fail(limiter, "alice", "1.1.1.1", t)
    assert (await limiter.reserve("login", "alice", "1.1.1.1", 2)).retry_after == 58
    await client.aclose()
