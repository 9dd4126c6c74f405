"""Login rate limits: failures per username, attempts per address, in a sliding window."""

from __future__ import annotations

import pytest

from auth_service.ratelimit import MemoryLoginLimiter


@pytest.mark.anyio
async def test_failures_past_the_limit_lock_the_username_until_the_oldest_ages_out() -> None:
    limiter = MemoryLoginLimiter(max_failures=3, max_attempts_per_address=100, window=60)
    for t in (0, 10, 20):
        assert await limiter.retry_after("alice", "1.2.3.4", t) == 0
        await limiter.attempted("alice", "1.2.3.4", t, failed=True)
    assert await limiter.retry_after("alice", "5.6.7.8", 30) == 30  # from any address
    assert await limiter.retry_after("bob", "1.2.3.4", 30) == 0  # other users unaffected
    assert await limiter.retry_after("alice", "1.2.3.4", 60) == 0


@pytest.mark.anyio
async def test_successful_logins_do_not_count_as_failures() -> None:
    limiter = MemoryLoginLimiter(max_failures=2, max_attempts_per_address=100, window=60)
    for t in range(10):
        await limiter.attempted("alice", "1.2.3.4", t, failed=False)
    assert await limiter.retry_after("alice", "1.2.3.4", 10) == 0


@pytest.mark.anyio
async def test_attempts_per_address_are_limited_across_usernames() -> None:
    limiter = MemoryLoginLimiter(max_failures=100, max_attempts_per_address=5, window=60)
    for i in range(5):
        await limiter.attempted(f"user{i}", "1.2.3.4", 0, failed=False)
    assert await limiter.retry_after("someone", "1.2.3.4", 1) == 59
    assert await limiter.retry_after("someone", "9.9.9.9", 1) == 0
