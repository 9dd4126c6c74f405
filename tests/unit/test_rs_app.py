"""resource_service.app: the demo API over a real Verifier and an in-test issuer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from resource_service import ResourceSettings, Verifier, create_app

pytestmark = pytest.mark.anyio
ISSUER = "https://auth.example"
NOW = 1_700_000_000


class Issuer:
    """The wire contract's discovery, JWKS and revocation feed (empty, quiet stream)."""

    def __init__(self) -> None:
        self.private = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwks = {"keys": [{**jwk, "kid": "ed-1", "alg": "EdDSA", "use": "sig"}]}

    def mint(self, **changes: Any) -> str:
        claims = {"iss": ISSUER, "sub": "u-1", "aud": "api", "iat": NOW, "exp": NOW + 300,
                  "jti": "j-1", "client_id": "web", "scope": "reports:read", "sid": "s-1"}
        claims.update(changes)
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": "ed-1", "typ": "at+jwt"})

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        routes = {
            "/.well-known/oauth-authorization-server": {
                "issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks", "token_endpoint": f"{ISSUER}/token",
                "revocation_list_uri": f"{ISSUER}/revocations",
                "revocation_stream_uri": f"{ISSUER}/revocations/stream",
            },
            "/jwks": self.jwks,
            "/revocations": {"feed": "F", "cursor": 0, "snapshot": True, "entries": []},
        }
        if request.url.path in routes:
            return httpx.Response(200, json=routes[request.url.path])

        async def quiet() -> AsyncIterator[bytes]:
            await asyncio.Event().wait()
            yield b""

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=quiet())


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


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


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


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
    assert response.json() == {"status": "ok", "replica": "replica-7",
                               "revocation_staleness": 0, "jwks_age": 0, "keys": 1}


async def test_unknown_path_with_a_valid_token_is_404_with_replica_id(client, issuer):
    response = await client.get("/nowhere", headers=bearer(issuer.mint()))
    assert response.status_code == 404 and response.headers["x-replica-id"] == "replica-7"


async def test_internal_error_is_500_with_replica_id(client, issuer):
    response = await client.get("/boom", headers=bearer(issuer.mint()))
    assert response.status_code == 500 and response.headers["x-replica-id"] == "replica-7"
    assert "bug" not in response.text


async def test_docs_and_openapi_are_served_without_a_token(client):
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    password = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
    assert password["tokenUrl"] == f"{ISSUER}/token"
    assert schema["paths"]["/me"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    assert schema["paths"]["/reports"]["get"]["security"] == [{"OAuth2PasswordBearer": ["reports:read"]}]


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
