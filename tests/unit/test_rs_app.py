"""resource_service.app: the demo API over a real Verifier and an in-test issuer."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from resource_service import ResourceSettings, Verifier, create_app
from tests.conftest import bearer
from tests.unit import fakes
from tests.unit.fakes import ISSUER, Issuer

pytestmark = pytest.mark.anyio
NOW = int(fakes.NOW)  # these tests keep to whole seconds


@pytest.fixture
def issuer() -> Issuer:
    return Issuer("ed-1", "EdDSA")


@pytest.fixture
async def app(issuer):
    settings = ResourceSettings(auth_url=ISSUER, replica_id="replica-7")
    verifier = Verifier(settings, clock=lambda: NOW + 1, transport=httpx.MockTransport(issuer))
    app = create_app(settings, verifier=verifier)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_me_returns_the_claims_and_the_replica(client, issuer):
    response = await client.get("/me", headers=bearer(issuer.mint()))
    assert response.status_code == 200
    assert response.json()["replica"] == "replica-7"
    assert response.json()["claims"]["sub"] == "u-1"
    assert response.headers["x-replica-id"] == "replica-7"


async def test_me_without_credentials_is_401(client):
    response = await client.get("/me")
    assert response.status_code == 401 and response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert response.headers["x-replica-id"] == "replica-7"


async def test_me_with_an_expired_token_is_401_invalid_token(client, issuer):
    response = await client.get("/me", headers=bearer(issuer.mint(exp=NOW - 60)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="token has expired"'
    )


async def test_malformed_authorization_header_is_400(client):
    response = await client.get("/me", headers={"authorization": "Bearer a b"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_reports_needs_the_reports_read_scope(client, issuer):
    allowed = await client.get("/reports", headers=bearer(issuer.mint()))
    assert allowed.status_code == 200 and allowed.json()["replica"] == "replica-7"
    refused = await client.get("/reports", headers=bearer(issuer.mint(scope="profile")))
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"].endswith('scope="reports:read"')
    assert refused.headers["x-replica-id"] == "replica-7"


async def test_healthz_needs_no_token_and_reports_freshness(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("revocation_push")["source"] == "sse"
    assert body == {"status": "ok", "replica": "replica-7", "revocation_staleness": 0, "jwks_age": 0, "keys": 1}


async def test_unknown_path_with_a_valid_token_is_404_with_replica_id(client, issuer):
    response = await client.get("/nowhere", headers=bearer(issuer.mint()))
    assert response.status_code == 404 and response.headers["x-replica-id"] == "replica-7"


async def test_internal_error_is_500_with_replica_id(client, issuer):
    response = await client.get("/boom", headers={**bearer(issuer.mint()), "X-Request-Id": "r-500"})
    assert response.status_code == 500 and response.headers["x-replica-id"] == "replica-7"
    assert response.headers.get_list("x-request-id") == ["r-500"]
    assert "bug" not in response.text


async def test_docs_and_openapi_are_served_without_a_token(client):
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    code = schema["components"]["securitySchemes"]["OAuth2AuthorizationCodeBearer"]["flows"]["authorizationCode"]
    assert code["tokenUrl"] == f"{ISSUER}/token" and code["authorizationUrl"] == f"{ISSUER}/authorize"
    assert schema["paths"]["/me"]["get"]["security"] == [{"OAuth2AuthorizationCodeBearer": []}]
    assert schema["paths"]["/reports"]["get"]["security"] == [{"OAuth2AuthorizationCodeBearer": ["reports:read"]}]


async def test_lifespan_starts_and_stops_the_verifier(issuer):
    settings = ResourceSettings(auth_url=ISSUER, replica_id="r1")
    verifier = Verifier(settings, clock=lambda: NOW, transport=httpx.MockTransport(issuer))
    app = create_app(settings, verifier=verifier)
    assert verifier.status()["keys"] == 0
    async with app.router.lifespan_context(app):
        assert verifier.status()["keys"] == 1
    assert [t for t in asyncio.all_tasks() if t.get_name() == "resource-service-verifier"] == []


def test_create_app_builds_its_own_verifier_from_settings():
    app = create_app(ResourceSettings(auth_url=ISSUER, audience="billing"))
    assert app.state.verifier.settings.audience == "billing"
