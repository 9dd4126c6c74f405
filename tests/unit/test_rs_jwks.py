"""resource_service.jwks: the key cache's refetch rules, against an in-test JWKS endpoint."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from resource_service.jwks import JwksCache
from tests.unit.fakes import Clock

pytestmark = pytest.mark.anyio
URI = "https://auth.example/.well-known/jwks.json"


def ec_jwk(kid: str) -> dict[str, Any]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {**ECAlgorithm.to_jwk(public, as_dict=True), "kid": kid, "alg": "ES256", "use": "sig"}


def ed_jwk(kid: str) -> dict[str, Any]:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return {**OKPAlgorithm.to_jwk(public, as_dict=True), "kid": kid, "alg": "EdDSA", "use": "sig"}


class JwksEndpoint:
    """A JWKS endpoint whose answer each test sets; it counts the requests it gets."""

    def __init__(self) -> None:
        self.keys = [ec_jwk("k1")]
        self.etag = '"v1"'
        self.cache_control = "public, max-age=300"
        self.failure: httpx.Response | Exception | None = None
        self.requests: list[httpx.Request] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.failure, Exception):
            raise self.failure
        if self.failure is not None:
            return self.failure
        headers = {"etag": self.etag, "cache-control": self.cache_control}
        if request.headers.get("if-none-match") == self.etag:
            return httpx.Response(304, headers=headers)
        return httpx.Response(200, json={"keys": self.keys}, headers=headers)


@pytest.fixture
def endpoint() -> JwksEndpoint:
    return JwksEndpoint()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cache(endpoint, clock):
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        yield JwksCache(client, URI, min_refetch_interval=10.0, clock=clock)


async def test_refresh_loads_keys_by_kid_and_reports_age(cache, clock):
    assert cache.age() is None and cache.due_in() == 0
    assert await cache.refresh() is True
    assert list(cache.keys) == ["k1"] and cache.keys["k1"].alg == "ES256"
    clock.now += 42
    assert cache.age() == 42


async def test_background_refresh_is_due_when_the_copy_outlives_max_age(cache, clock):
    await cache.refresh()
    assert cache.due_in() == 300
    clock.now += 299
    assert cache.due_in() == 1
    clock.now += 2
    assert cache.due_in() == 0


async def test_the_scheduled_refresh_comes_up_to_a_fifth_of_max_age_early_never_late(endpoint, clock):
    draws = iter([0.0, 0.5, 0.999])
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        cache = JwksCache(client, URI, min_refetch_interval=10.0, clock=clock, rand=lambda: next(draws))
        assert cache.next_refresh_in() == 0  # nothing held yet: at once, whatever the draw
        await cache.refresh()
        assert cache.next_refresh_in() == 300  # a draw of 0: exactly at max-age
        assert cache.next_refresh_in() == 270  # half the spread early
        assert 240 < cache.next_refresh_in() < 241  # the most: a fifth of max-age early


async def test_a_fleet_started_together_spreads_its_refreshes_over_the_last_fifth_of_max_age(endpoint, clock):
    draw = random.Random(7).random
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        caches = [JwksCache(client, URI, min_refetch_interval=10.0, clock=clock, rand=draw) for _ in range(200)]
        for cache in caches:
            await cache.refresh()
        due = [cache.next_refresh_in() for cache in caches]
    assert all(240 <= d <= 300 for d in due)
    busiest = max(sum(1 for d in due if int(d) == second) for second in range(240, 301))
    assert busiest <= 15, "200 replicas refreshing within one second of each other"


@pytest.mark.parametrize(
    ("header", "max_age"),
    [
        ("public, max-age=60", 60),
        ("max-age=600, public", 600),
        ("no-cache", 1),
        ("", 300),
        ("max-age=1", 1),
        ("max-age=0", 1),
        ("max-age=99999999", 86400),
    ],
    ids=[
        "max-age",
        "max-age first",
        "no-cache: the 1 s floor",
        "absent: default",
        "one second is honoured, whatever the unknown-kid interval",
        "below the floor",
        "above a day",
    ],
)
async def test_max_age_follows_cache_control_within_bounds(cache, endpoint, header, max_age):
    endpoint.cache_control = header
    await cache.refresh()
    assert cache.max_age == max_age


async def test_revalidation_sends_the_etag_and_a_304_keeps_the_keys(cache, endpoint, clock):
    await cache.refresh()
    key = cache.keys["k1"]
    clock.now += 301
    assert await cache.refresh() is True
    assert endpoint.requests[-1].headers["if-none-match"] == '"v1"'
    assert cache.keys["k1"] is key and cache.age() == 0


async def test_unchanged_jwk_keeps_its_key_object_and_a_changed_one_gets_a_new_one(cache, endpoint):
    await cache.refresh()
    first = cache.keys["k1"]
    endpoint.etag = '"v2"'
    endpoint.keys = [*endpoint.keys, ed_jwk("k2")]
    await cache.refresh()
    assert cache.keys["k1"] is first and set(cache.keys) == {"k1", "k2"}
    endpoint.etag = '"v3"'
    endpoint.keys = [ec_jwk("k1")]
    await cache.refresh()
    assert cache.keys["k1"] is not first and set(cache.keys) == {"k1"}


FAILURES = {
    "network error": httpx.ConnectError("refused"),
    "server error": httpx.Response(500),
    "not JSON": httpx.Response(200, content=b"<html>"),
    "not a key set": httpx.Response(200, json=["k1"]),
    "empty key set": httpx.Response(200, json={"keys": []}),
    "only unusable keys": httpx.Response(200, json={"keys": [{"kid": "x", "alg": "HS256", "kty": "oct"}]}),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_failed_fetch_keeps_the_last_good_key_set(cache, endpoint, clock, failure):
    await cache.refresh()
    key = cache.keys["k1"]
    endpoint.failure = failure
    endpoint.etag = '"v2"'
    clock.now += 400
    assert await cache.refresh() is False
    assert cache.keys == {"k1": key}
    assert cache.age() == 400  # still reported as old: the issuer did not confirm it


async def test_unusable_jwk_is_skipped_with_a_log_line(cache, endpoint, caplog):
    endpoint.keys = [{**ec_jwk("bad"), "d": "secret"}, "junk", ec_jwk("k1"), ec_jwk("k1")]
    with caplog.at_level(logging.WARNING, logger="resource_service.jwks"):
        assert await cache.refresh() is True
    assert list(cache.keys) == ["k1"]
    assert "bad" in caplog.text
    assert "secret" not in caplog.text


async def test_known_kid_never_fetches(cache, endpoint):
    await cache.refresh()
    for _ in range(3):
        assert await cache.get_or_refetch("k1") is cache.keys["k1"]
    assert len(endpoint.requests) == 1


async def test_unknown_kid_refetches_once_the_interval_has_passed(cache, endpoint, clock):
    await cache.refresh()
    endpoint.keys = [*endpoint.keys, ec_jwk("k2")]
    endpoint.etag = '"v2"'
    clock.now += 10
    key = await cache.get_or_refetch("k2")
    assert key is not None and key.kid == "k2"
    assert len(endpoint.requests) == 2


async def test_second_unknown_kid_inside_the_interval_does_not_fetch(cache, endpoint, clock):
    await cache.refresh()
    clock.now += 10
    assert await cache.get_or_refetch("junk-1") is None
    assert len(endpoint.requests) == 2
    clock.now += 9.9
    assert await cache.get_or_refetch("junk-2") is None
    assert await cache.get_or_refetch("junk-1") is None
    assert len(endpoint.requests) == 2
    clock.now += 0.1
    assert await cache.get_or_refetch("junk-2") is None
    assert len(endpoint.requests) == 3


async def test_concurrent_requests_for_an_unknown_kid_share_one_fetch(cache, endpoint, clock):
    await cache.refresh()
    endpoint.keys = [*endpoint.keys, ec_jwk("k2")]
    endpoint.etag = '"v2"'
    endpoint.gate = asyncio.Event()
    clock.now += 60
    waiting = [asyncio.create_task(cache.get_or_refetch(kid)) for kid in ("k2", "k2", "k2", "k3")]
    while len(endpoint.requests) < 2:
        await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)  # give the others every chance to start a fetch of their own
    endpoint.gate.set()
    found = await asyncio.gather(*waiting)
    assert [key.kid if key else None for key in found] == ["k2", "k2", "k2", None]
    assert len(endpoint.requests) == 2


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch(cache, endpoint, clock):
    endpoint.gate = asyncio.Event()
    first = asyncio.create_task(cache.refresh())
    second = asyncio.create_task(cache.refresh())
    while not endpoint.requests:
        await asyncio.sleep(0)
    first.cancel()
    endpoint.gate.set()
    assert await second is True
    assert "k1" in cache.keys and len(endpoint.requests) == 1
