"""resource_service.verifier: discovery, readiness, the verified-token cache, fail closed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from resource_service import InvalidToken, ResourceSettings, Unavailable, Verifier
from resource_service.discovery import parse_metadata
from tests.unit.fakes import ISSUER, NOW, Clock, Issuer, no_wait

pytestmark = pytest.mark.anyio


async def settle() -> None:
    """Let background tasks reach their idle state (waiting on the stream or long timers)."""
    for _ in range(200):
        await asyncio.sleep(0)


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def settings(**changes: Any) -> ResourceSettings:
    return ResourceSettings(**{"auth_url": ISSUER, "replica_id": "r1", **changes})


@pytest.fixture
async def make(issuer, clock):
    started: list[Verifier] = []

    async def make(**changes: Any) -> Verifier:
        verifier = Verifier(settings(**changes), clock=clock, transport=httpx.MockTransport(issuer), sleep=no_wait)
        await verifier.start()
        started.append(verifier)
        await settle()
        return verifier

    yield make
    for verifier in started:
        await verifier.stop()


async def test_valid_token_yields_its_claims(make, issuer):
    verifier = await make()
    claims = await verifier.verify(issuer.mint(jti="j-a"))
    assert claims["jti"] == "j-a" and claims["sub"] == "u-1"
    assert verifier.metadata is not None and verifier.metadata.token_endpoint == f"{ISSUER}/token"


async def test_refresh_token_is_never_accepted(make, issuer):
    verifier = await make()
    private, _ = issuer.signing["rsa-1"]
    refresh = jwt.encode(
        {
            "iss": ISSUER,
            "sub": "u-1",
            "aud": ISSUER,
            "iat": int(NOW),
            "exp": int(NOW) + 900,
            "jti": "r-1",
            "sid": "s-1",
            "client_id": "web",
            "scope": "",
        },
        private,
        algorithm="RS256",
        headers={"kid": "rsa-1", "typ": "rt+jwt"},
    )
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(refresh)
    assert caught.value.reason == "wrong_typ" and caught.value.status_code == 401


async def test_start_does_not_fail_while_the_issuer_is_down_and_recovers_by_itself(make, issuer):
    issuer.down = True
    verifier = await make()
    with pytest.raises(Unavailable) as caught:
        await verifier.verify(issuer.mint())
    assert caught.value.status_code == 503
    issuer.down = False
    for _ in range(50):
        await settle()
        if verifier.status()["keys"]:
            break
    assert (await verifier.verify(issuer.mint(jti="j-late")))["jti"] == "j-late"


async def test_metadata_naming_another_issuer_is_refused(make, issuer, caplog):
    issuer.metadata_issuer = "https://evil.example"
    with caplog.at_level(logging.WARNING, logger="resource_service.verifier"):
        verifier = await make()
    assert "another issuer" in caplog.text
    assert verifier.status()["keys"] == 0 and issuer.jwks_fetches == 0
    with pytest.raises(Unavailable):
        await verifier.verify(issuer.mint())


@pytest.mark.parametrize("member", ["jwks_uri", "revocation_list_uri", "revocation_stream_uri"])
async def test_metadata_sending_keys_or_feed_to_another_host_is_refused(make, issuer, caplog, member):
    issuer.metadata_changes = {member: "https://evil.example/.well-known/jwks.json"}
    with caplog.at_level(logging.WARNING, logger="resource_service.verifier"):
        verifier = await make()
    assert "RESOURCE_ALLOWED_METADATA_HOSTS" in caplog.text
    assert verifier.status()["keys"] == 0 and issuer.jwks_fetches == 0
    with pytest.raises(Unavailable):
        await verifier.verify(issuer.mint())


async def test_metadata_may_send_keys_to_an_allowed_host(make, issuer):
    issuer.metadata_changes = {"jwks_uri": "https://keys.example/.well-known/jwks.json"}
    verifier = await make(allowed_metadata_hosts=["Keys.Example"])
    assert verifier.metadata is not None and verifier.metadata.jwks_uri.startswith("https://keys.example/")
    assert verifier.status()["keys"] == 1  # the fake answers every host


async def test_second_verify_of_a_token_skips_the_signature_check(make, issuer, decodes):
    verifier = await make()
    token = issuer.mint()
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert decodes == [token]


async def test_cached_token_still_expires(make, issuer, clock, decodes):
    verifier = await make()
    token = issuer.mint(exp=int(NOW) + 60)
    await verifier.verify(token)
    clock.now += 60 + 30 - 1  # within the leeway
    await verifier.verify(token)
    clock.now += 1
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "expired" and len(decodes) == 1


async def test_cached_token_is_refused_once_revoked(make, issuer):
    verifier = await make()
    token = issuer.mint(jti="j-stolen")
    other = issuer.mint(jti="j-fine", sid="s-2")
    await verifier.verify(token)
    await verifier.verify(other)
    issuer.revoke("jti", "j-stolen")
    assert verifier.sync is not None and await verifier.sync.pull()
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.description == "token has been revoked"
    assert (await verifier.verify(other))["jti"] == "j-fine"


@pytest.mark.parametrize(("kind", "value", "before"), [("sid", "s-1", None), ("sub", "u-1", int(NOW) + 1)])
async def test_session_and_subject_revocations_apply_to_cached_tokens(make, issuer, kind, value, before):
    verifier = await make()
    token = issuer.mint()
    await verifier.verify(token)
    issuer.revoke(kind, value, before)
    await verifier.sync.pull()
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_cached_token_is_refused_once_its_key_is_withdrawn(make, issuer, clock, decodes):
    verifier = await make()
    token = issuer.mint()
    await verifier.verify(token)
    issuer.add_key("ec-2", ec.generate_private_key(ec.SECP256R1()), "ES256")
    issuer.published = issuer.published[1:]
    clock.now += 301
    assert verifier.jwks is not None and await verifier.jwks.refresh()
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "unknown_kid" and len(decodes) == 2


async def test_token_from_a_newly_published_key_triggers_one_refetch(make, issuer, clock):
    verifier = await make(jwks_min_refetch_interval=60)
    issuer.add_key("ec-2", ec.generate_private_key(ec.SECP256R1()), "ES256")
    clock.now += 59  # inside the refetch interval since start-up's fetch
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(issuer.mint("ec-2"))
    assert caught.value.reason == "unknown_kid" and issuer.jwks_fetches == 1
    clock.now += 1
    assert (await verifier.verify(issuer.mint("ec-2", jti="j-new")))["jti"] == "j-new"
    assert issuer.jwks_fetches == 2


async def test_junk_kids_cause_at_most_one_fetch_per_interval(make, issuer, clock):
    verifier = await make()
    clock.now += 10
    private, _ = issuer.signing["rsa-1"]
    for n in range(5):
        junk = jwt.encode({"sub": "x"}, private, algorithm="RS256", headers={"kid": f"junk-{n}", "typ": "at+jwt"})
        with pytest.raises(InvalidToken):
            await verifier.verify(junk)
    assert issuer.jwks_fetches == 2


async def test_cache_is_bounded(make, issuer, decodes):
    verifier = await make(token_cache_size=2)
    tokens = [issuer.mint() for _ in range(3)]
    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[2])
    await verifier.verify(tokens[0])  # evicted: verified again
    assert decodes == [*tokens, tokens[0]]


async def test_cache_size_zero_disables_the_cache(make, issuer, decodes):
    verifier = await make(token_cache_size=0)
    token = issuer.mint()
    await verifier.verify(token)
    await verifier.verify(token)
    assert decodes == [token, token]


async def test_returned_claims_are_a_copy(make, issuer):
    verifier = await make()
    token = issuer.mint()
    (await verifier.verify(token))["scope"] = "admin"
    assert (await verifier.verify(token))["scope"] == "reports:read"


async def test_leeway_setting_applies_to_expiry(make, issuer, clock):
    verifier = await make(leeway=0)
    clock.now += 300
    with pytest.raises(InvalidToken):
        await verifier.verify(issuer.mint())


async def test_audience_and_issuer_settings_are_enforced(issuer, clock):
    verifier = Verifier(settings(audience="billing"), clock=clock, transport=httpx.MockTransport(issuer))
    await verifier.start()
    try:
        with pytest.raises(InvalidToken) as caught:
            await verifier.verify(issuer.mint())
        assert caught.value.reason == "wrong_audience"
        assert (await verifier.verify(issuer.mint(aud="billing")))["aud"] == "billing"
    finally:
        await verifier.stop()


async def test_stale_revocation_list_fails_closed_when_bounded(make, issuer, clock):
    verifier = await make(max_revocation_staleness=30, revocation_poll_interval=7)
    token = issuer.mint()
    await verifier.verify(token)
    clock.now += 30
    await verifier.verify(token)
    clock.now += 1
    with pytest.raises(Unavailable) as caught:
        await verifier.verify(token)
    assert caught.value.status_code == 503 and caught.value.headers() == {"Retry-After": "7"}
    await verifier.sync.pull()
    assert (await verifier.verify(token))["sub"] == "u-1"


async def test_issuer_may_differ_from_the_address_the_replica_uses(issuer, clock):
    seen: list[str] = []

    async def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return await issuer(request)

    verifier = Verifier(
        settings(auth_url="http://auth.internal:8000", issuer=ISSUER),
        clock=clock,
        transport=httpx.MockTransport(recording),
    )
    await verifier.start()
    try:
        assert (await verifier.verify(issuer.mint()))["iss"] == ISSUER
        assert seen[0] == "auth.internal"  # discovery at auth_url; the rest where the metadata says
    finally:
        await verifier.stop()


async def test_stale_revocation_list_is_served_when_unbounded(make, issuer, clock):
    verifier = await make()
    clock.now += 3600
    assert (await verifier.verify(issuer.mint(iat=int(clock.now), exp=int(clock.now) + 60)))["sub"] == "u-1"
    assert verifier.status()["revocation_staleness"] == 3600


async def test_status_reports_keys_and_ages(make, clock):
    verifier = await make()
    clock.now += 7
    status = verifier.status()
    assert {k: status[k] for k in ("revocation_staleness", "jwks_age", "keys")} == {
        "revocation_staleness": 7,
        "jwks_age": 7,
        "keys": 1,
    }
    assert status["revocation_push"]["source"] == "sse"
    assert status["revocation_push"]["pulled"] == status["revocation_push"]["pushed"] == 0


async def test_stop_ends_the_background_work(make, issuer):
    verifier = await make()
    await asyncio.wait_for(issuer.stream_open.wait(), 5)
    await verifier.stop()
    assert verifier._task is None
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "resource-service-verifier"]
    assert tasks == []


METADATA_ORIGINS = {
    "same origin": ("https://auth.example", "https://auth.example/jwks", (), True),
    "default port spelled out": ("https://auth.example", "https://auth.example:443/jwks", (), True),
    "plain http from an https issuer": ("https://auth.example", "http://auth.example/jwks", (), False),
    "another port": ("https://auth.example", "https://auth.example:8443/jwks", (), False),
    "another host": ("https://auth.example", "https://keys.example/jwks", (), False),
    "a look-alike host": ("https://auth.example", "https://auth.example.evil/jwks", (), False),
    "an allowed host": ("https://auth.example", "https://keys.example/jwks", ("keys.example",), True),
    "an allowed host and port": (
        "https://auth.example",
        "https://keys.example:8443/jwks",
        ("keys.example:8443",),
        True,
    ),
    "an allowed host over http": ("https://auth.example", "http://keys.example/jwks", ("keys.example",), False),
    "another loopback port": ("http://127.0.0.1:8000", "http://127.0.0.1:9000/jwks", (), False),
}


@pytest.mark.parametrize(
    ("issuer_url", "jwks_uri", "allowed", "accepted"), METADATA_ORIGINS.values(), ids=METADATA_ORIGINS.keys()
)
def test_key_and_feed_urls_keep_the_issuers_origin(issuer_url, jwks_uri, allowed, accepted):
    document = {
        "issuer": issuer_url,
        "jwks_uri": jwks_uri,
        "token_endpoint": f"{issuer_url}/token",
        "revocation_list_uri": f"{issuer_url}/revocations",
        "revocation_stream_uri": f"{issuer_url}/revocations/stream",
    }
    if accepted:
        assert parse_metadata(document, issuer_url, allowed).jwks_uri == jwks_uri
    else:
        with pytest.raises(ValueError, match="RESOURCE_ALLOWED_METADATA_HOSTS"):
            parse_metadata(document, issuer_url, allowed)
