"""RESOURCE_CORS_ORIGINS: a page on another origin calls a replica with a bearer token.

The browser first sends a preflight (no token), then the request; both must pass the CORS
layer, which sits outside authentication so that a refusal is readable by the page too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from resource_service import ResourceSettings, Verifier, create_app
from tests.conftest import bearer
from tests.unit import fakes
from tests.unit.fakes import ISSUER, Issuer

pytestmark = pytest.mark.anyio

SPA = "http://127.0.0.1:5173"
PREFLIGHT = {"Origin": SPA, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}


@pytest.fixture
def issuer() -> Issuer:
    return Issuer("ed-1", "EdDSA")


@asynccontextmanager
async def _client(issuer: Issuer, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the demo API, its verifier started (keys fetched) as in a served replica."""
    config = ResourceSettings(auth_url=ISSUER, replica_id="replica-7", **settings)
    verifier = Verifier(config, clock=lambda: int(fakes.NOW) + 1, transport=httpx.MockTransport(issuer))
    app = create_app(config, verifier=verifier)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client:
            yield client


@pytest.fixture
async def client(issuer):
    async with _client(issuer, cors_origins=[SPA]) as client:
        yield client


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(client):
    response = await client.options("/me", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SPA
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "GET" in response.headers["access-control-allow-methods"]
    assert response.headers["x-replica-id"] == "replica-7"


async def test_a_verified_request_carries_the_cors_headers(client, issuer):
    response = await client.get("/me", headers={"Origin": SPA, **bearer(issuer.mint())})
    assert response.status_code == 200 and response.json()["claims"]["sub"] == "u-1"
    assert response.headers["access-control-allow-origin"] == SPA
    assert "x-replica-id" in response.headers["access-control-expose-headers"].lower()


async def test_a_refusal_carries_the_cors_headers_and_exposes_the_challenge(client):
    response = await client.get("/me", headers={"Origin": SPA, **bearer("not.a.token")})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer ")
    assert response.headers["access-control-allow-origin"] == SPA
    assert "www-authenticate" in response.headers["access-control-expose-headers"].lower()


async def test_another_origin_gets_no_cors_headers(client, issuer):
    other = "http://127.0.0.1:9999"
    preflight = await client.options("/me", headers={**PREFLIGHT, "Origin": other})
    assert preflight.status_code == 400 and "access-control-allow-origin" not in preflight.headers
    response = await client.get("/me", headers={"Origin": other, **bearer(issuer.mint())})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


async def test_without_origins_a_preflight_meets_authentication(issuer):
    async with _client(issuer) as client:
        response = await client.options("/me", headers=PREFLIGHT)
    assert response.status_code == 401 and "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("http://127.0.0.1:5173/", id="trailing-slash"),
        pytest.param("http://127.0.0.1:5173/app", id="path"),
        pytest.param("127.0.0.1:5173", id="no-scheme"),
        pytest.param("*", id="wildcard"),
        pytest.param("file:///index.html", id="not-http"),
    ],
)
def test_an_entry_that_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="not an origin"):
        ResourceSettings(auth_url=ISSUER, cors_origins=[value])


def test_origins_are_read_from_the_environment_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESOURCE_CORS_ORIGINS", f'["{SPA}"]')
    assert ResourceSettings(auth_url=ISSUER).cors_origins == [SPA]
