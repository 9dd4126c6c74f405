"""The grant rules of `POST /token`, in process: `create_app` with an injected clock and an ASGI client.

No sleeping: the clock moves when a test says so, so session lifetimes, refresh rates and
token expiry are exercised in milliseconds. Real SQLite file, real Argon2id, real keys; only
the process boundary is left out (tests/integration covers it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.unit.fakes import NOW
from tests.unit.inprocess_issuer import PASSWORD, Running, running_issuer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def issuer(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    async with running_issuer(tmp_path, **getattr(request, "param", {})) as running:
        yield running


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_tokens_are_stamped_with_the_injected_clock(issuer: Running) -> None:
    body = await issuer.login()
    access, refresh = _claims(body["access_token"]), _claims(body["refresh_token"])
    assert access["iat"] == refresh["iat"] == int(NOW)
    assert access["exp"] == int(NOW) + issuer.issuer.settings.access_token_ttl == int(NOW) + body["expires_in"]


async def test_a_refresh_rotates_and_the_retired_token_replayed_revokes_the_session(issuer: Running) -> None:
    first = await issuer.login()
    issuer.clock.now += 10
    second = await issuer.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200
    assert _claims(second.json()["access_token"])["iat"] == int(NOW) + 10
    replay = await issuer.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert replay.json()["error_description"] == "refresh token already used; the session is revoked"
    successor = await issuer.token(grant_type="refresh_token", refresh_token=second.json()["refresh_token"])
    assert successor.json() == {"error": "invalid_grant", "error_description": "refresh token revoked"}


@pytest.mark.parametrize("issuer", [{"refresh_reuse_grace": 5}], indirect=True)
async def test_two_tabs_refreshing_at_once_within_the_grace_leave_the_winners_successor_working(
    issuer: Running,
) -> None:
    token = (await issuer.login())["refresh_token"]
    answers = await asyncio.gather(*[issuer.token(grant_type="refresh_token", refresh_token=token) for _ in range(2)])
    assert sorted(a.status_code for a in answers) == [200, 400]
    loser = next(a for a in answers if a.status_code == 400).json()
    assert loser == {
        "error": "invalid_grant",
        "error_description": "refresh token already used; use the one its refresh returned",
    }
    winner = next(a for a in answers if a.status_code == 200).json()
    issuer.clock.now += 1
    assert (await issuer.token(grant_type="refresh_token", refresh_token=winner["refresh_token"])).status_code == 200
    assert await issuer.issuer.store.entries_after(0) == [], "the session was never revoked"


async def test_without_a_grace_an_immediate_replay_revokes_the_whole_session(issuer: Running) -> None:
    token = (await issuer.login())["refresh_token"]
    answers = await asyncio.gather(*[issuer.token(grant_type="refresh_token", refresh_token=token) for _ in range(2)])
    assert sorted(a.status_code for a in answers) == [200, 400]
    winner = next(a for a in answers if a.status_code == 200).json()
    assert (await issuer.token(grant_type="refresh_token", refresh_token=winner["refresh_token"])).json() == {
        "error": "invalid_grant",
        "error_description": "refresh token revoked",
    }
    assert [e.kind for e in await issuer.issuer.store.entries_after(0)] == ["sid"]


@pytest.mark.parametrize("issuer", [{"access_token_jitter": 0.5}], indirect=True)
async def test_access_token_jitter_spreads_lifetimes_below_the_ttl_never_above(issuer: Running) -> None:
    ttl = issuer.issuer.settings.access_token_ttl
    lifetimes = set()
    for _ in range(8):
        body = await issuer.login()
        claims = _claims(body["access_token"])
        assert body["expires_in"] == claims["exp"] - claims["iat"]
        lifetimes.add(body["expires_in"])
    assert all(ttl // 2 <= lifetime <= ttl for lifetime in lifetimes)
    assert len(lifetimes) > 1, "eight logins at one instant, eight chances to differ"


async def test_a_refresh_may_narrow_the_scope_but_never_widen_it(issuer: Running) -> None:
    first = await issuer.login(scope="reports:read")
    wider = await issuer.token(grant_type="refresh_token", refresh_token=first["refresh_token"], scope="reports:write")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("issuer", [{"session_max_lifetime": 3600}], indirect=True)
async def test_a_session_ends_at_its_maximum_lifetime_however_often_it_refreshes(issuer: Running) -> None:
    token = (await issuer.login())["refresh_token"]
    for _ in range(3):
        issuer.clock.now += 1000
        answer = await issuer.token(grant_type="refresh_token", refresh_token=token)
        assert answer.status_code == 200, answer.text
        token = answer.json()["refresh_token"]
        assert _claims(token)["exp"] <= int(NOW) + 3600
    issuer.clock.now = NOW + 3600
    late = await issuer.token(grant_type="refresh_token", refresh_token=token)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("issuer", [{"refresh_rate": 2}], indirect=True)
async def test_refreshing_one_session_too_fast_is_throttled_until_the_minute_has_passed(issuer: Running) -> None:
    token = (await issuer.login())["refresh_token"]  # the login's refresh token counts as one
    token = (await issuer.token(grant_type="refresh_token", refresh_token=token)).json()["refresh_token"]
    third = await issuer.token(grant_type="refresh_token", refresh_token=token)
    assert third.status_code == 429 and third.headers["retry-after"] == "60"
    issuer.clock.now += 61
    assert (await issuer.token(grant_type="refresh_token", refresh_token=token)).status_code == 200


async def test_an_expired_refresh_token_is_an_invalid_grant(issuer: Running) -> None:
    token = (await issuer.login())["refresh_token"]
    issuer.clock.now += issuer.issuer.settings.refresh_token_ttl + issuer.issuer.settings.leeway + 1
    answer = await issuer.token(grant_type="refresh_token", refresh_token=token)
    assert answer.status_code == 400 and answer.json()["error_description"].startswith("refresh token invalid")


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({}, 400, "invalid_request"),
        ({"grant_type": "implicit"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "alice"}, 400, "invalid_request"),
        ({"grant_type": "password", "username": "alice", "password": "wrong password"}, 400, "invalid_grant"),
        ({"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "admin"}, 400, "invalid_scope"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "not.a.jwt"}, 400, "invalid_grant"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
    ],
)
async def test_each_grant_parses_its_request_and_answers_the_rfc6749_error(
    issuer: Running, form: dict[str, str], status: int, error: str
) -> None:
    answer = await issuer.token(**form)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert answer.headers["cache-control"] == "no-store"
