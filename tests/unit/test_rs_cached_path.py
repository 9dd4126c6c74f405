"""The middleware's path for a token seen before (`Verifier.cached`): as strict as a miss.

A request whose `Authorization: Bearer <token>` bytes the verifier accepted before is
answered without parsing the header or the token again. These tests hold that path to every
rule the full one keeps: the header's shape, expiry, revocation, the key still published,
failing closed on a stale list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from resource_service import BearerAuthMiddleware, ResourceSettings, Verifier
from tests.unit.fakes import ISSUER, NOW, Clock, Issuer, no_wait

pytestmark = pytest.mark.anyio


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = scope["user"].claims["jti"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(issuer, clock) -> AsyncIterator[Verifier]:
    settings = ResourceSettings(auth_url=ISSUER, max_revocation_staleness=30, revocation_poll_interval=7)
    verifier = Verifier(settings, clock=clock, transport=httpx.MockTransport(issuer), sleep=no_wait)
    await verifier.start()
    yield verifier
    await verifier.stop()


async def call(app: Any, *headers: tuple[bytes, bytes]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/me", "headers": list(headers), "query_string": b""}
    await app(scope, None, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def authorization(value: str) -> tuple[bytes, bytes]:
    return (b"authorization", value.encode())


async def test_a_token_seen_before_is_answered_without_decoding_it_again(verifier, issuer, decodes):
    app = BearerAuthMiddleware(echo, verifier)
    token = issuer.mint(jti="j-1")
    for _ in range(3):
        assert await call(app, authorization(f"Bearer {token}")) == (200, b"j-1")
    assert len(decodes) == 1


async def test_two_authorization_headers_are_refused_even_when_both_carry_a_cached_token(verifier, issuer):
    app = BearerAuthMiddleware(echo, verifier)
    token = issuer.mint()
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
    assert (await call(app, authorization(f"Bearer {token}"), authorization(f"Bearer {token}")))[0] == 400


@pytest.mark.parametrize(
    "spelling",
    ["bearer {token}", "BEARER {token}", "Bearer  {token}", "Bearer {token} ", "Bearer\t{token}"],
)
async def test_other_spellings_of_a_cached_token_take_the_strict_parse(verifier, issuer, spelling):
    app = BearerAuthMiddleware(echo, verifier)
    token = issuer.mint(jti="j-9")
    assert await call(app, authorization(f"Bearer {token}")) == (200, b"j-9")
    status, _ = await call(app, authorization(spelling.format(token=token)))
    # RFC 6750 allows the scheme in any case and 1*SP before the token; a tab is not a space.
    assert status == (400 if "\t" in spelling else 200)


async def test_a_cached_token_with_bytes_appended_is_not_the_cached_token(verifier, issuer):
    app = BearerAuthMiddleware(echo, verifier)
    token = issuer.mint()
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
    assert (await call(app, authorization(f"Bearer {token}x")))[0] == 401
    assert (await call(app, authorization(f"Bearer {token} extra")))[0] == 400


async def test_a_cached_token_is_refused_once_revoked_by_jti_sid_or_subject(verifier, issuer):
    app = BearerAuthMiddleware(echo, verifier)
    tokens = {kind: issuer.mint(jti=f"j-{kind}", sid=f"s-{kind}", sub=f"u-{kind}") for kind in ("jti", "sid", "sub")}
    for token in tokens.values():
        assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
    issuer.revoke("jti", "j-jti")
    issuer.revoke("sid", "s-sid")
    issuer.revoke("sub", "u-sub", before=int(NOW) + 1)
    assert verifier.sync is not None and await verifier.sync.pull()
    for token in tokens.values():
        assert (await call(app, authorization(f"Bearer {token}")))[0] == 401


async def test_a_cached_token_expires_on_time(verifier, issuer, clock):
    app = BearerAuthMiddleware(echo, verifier)
    token = issuer.mint(exp=int(clock.now) + 60)
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
    clock.now += 60 + 30  # past exp and the default 30 s leeway
    assert verifier.sync is not None and await verifier.sync.pull()  # the list itself is current
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 401


async def test_a_cached_token_is_refused_once_its_key_is_withdrawn(verifier, issuer, clock):
    app = BearerAuthMiddleware(echo, verifier)
    token = issuer.mint()
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
    issuer.add_key("ec-2", ec.generate_private_key(ec.SECP256R1()), "ES256")
    issuer.published = issuer.published[1:]
    clock.now += 301
    assert verifier.jwks is not None and await verifier.jwks.refresh()
    assert verifier.sync is not None and await verifier.sync.pull()
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 401


async def test_a_cached_token_survives_a_key_set_refresh_that_keeps_its_key(verifier, issuer, clock, decodes):
    app = BearerAuthMiddleware(echo, verifier)
    token = issuer.mint()
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
    issuer.add_key("ec-2", ec.generate_private_key(ec.SECP256R1()), "ES256")  # the next key, published first
    clock.now += 301
    assert verifier.jwks is not None and await verifier.jwks.refresh()
    assert verifier.sync is not None and await verifier.sync.pull()
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
    assert len(decodes) == 1


async def test_a_cached_token_gets_503_when_the_revocation_list_is_too_stale(verifier, issuer, clock):
    app = BearerAuthMiddleware(echo, verifier)
    token = issuer.mint()
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
    clock.now += 31  # RESOURCE_MAX_REVOCATION_STALENESS=30, and no pull meanwhile
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 503
    assert verifier.sync is not None and await verifier.sync.pull()
    assert (await call(app, authorization(f"Bearer {token}")))[0] == 200
