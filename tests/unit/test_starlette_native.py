"""`BearerAuthMiddleware` speaks Starlette's authentication: `request.user`, `request.auth`
and `starlette.authentication.requires()` work in a plain Starlette app and in FastAPI routes,
as they do behind Starlette's own `AuthenticationMiddleware` (docs/starlette.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Security
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from resource_service import (
    Authenticated,
    BearerAuthMiddleware,
    InsufficientScope,
    ResourceSettings,
    Verifier,
    current_claims,
    install_error_handlers,
)
from tests.conftest import bearer
from tests.unit import fakes
from tests.unit.fakes import ISSUER, Issuer

pytestmark = pytest.mark.anyio


@pytest.fixture
def issuer() -> Issuer:
    return Issuer("ed-1", "EdDSA")


@pytest.fixture
async def verifier(issuer: Issuer) -> AsyncIterator[Verifier]:
    verifier = Verifier(
        ResourceSettings(auth_url=ISSUER), clock=lambda: int(fakes.NOW) + 1, transport=httpx.MockTransport(issuer)
    )
    await verifier.start()
    yield verifier
    await verifier.stop()


def whoami(request: Any) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {
            "authenticated": user.is_authenticated,
            "identity": user.identity if user.is_authenticated else None,
            "display_name": user.display_name,
            "scopes": request.auth.scopes,
            "jti": user.claims["jti"] if user.is_authenticated else None,
            "same_as_current_claims": user.is_authenticated and user.claims == current_claims(),
        }
    )


@requires("reports:read")
async def reports(request: Any) -> JSONResponse:
    return JSONResponse({"reports": [], "for": request.user.identity})


@requires("reports:write")
async def write_report(request: Any) -> JSONResponse:
    return JSONResponse({"written": True})


async def rfc6750_write(request: Any) -> JSONResponse:
    if "reports:write" not in request.auth.scopes:
        raise InsufficientScope(["reports:write"])  # the RFC 6750 answer, with its challenge
    return JSONResponse({"written": True})


@pytest.fixture
async def starlette_client(verifier: Verifier) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/healthz", whoami),  # exempt by default: passes as an anonymous user
            Route("/reports", reports),
            Route("/reports/new", write_report, methods=["POST"]),
            Route("/reports/rfc6750", rfc6750_write, methods=["POST"]),
        ],
        middleware=[Middleware(BearerAuthMiddleware, verifier=verifier)],
    )
    install_error_handlers(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client:
        yield client


async def test_a_starlette_route_sees_the_token_as_request_user_and_request_auth(starlette_client, issuer):
    token = issuer.mint(jti="j-42", scope="reports:read profile", preferred_username="alice")
    body = (await starlette_client.get("/whoami", headers=bearer(token))).json()
    assert body == {
        "authenticated": True,
        "identity": "u-1",
        "display_name": "alice",
        "scopes": ["reports:read", "profile"],
        "jti": "j-42",
        "same_as_current_claims": True,
    }


async def test_display_name_falls_back_to_the_subject(starlette_client, issuer):
    body = (await starlette_client.get("/whoami", headers=bearer(issuer.mint(scope="")))).json()
    assert body["display_name"] == "u-1" and body["scopes"] == []


async def test_starlette_requires_lets_a_granted_scope_through_and_refuses_a_missing_one(starlette_client, issuer):
    token = issuer.mint(scope="reports:read")
    granted = await starlette_client.get("/reports", headers=bearer(token))
    assert granted.status_code == 200 and granted.json() == {"reports": [], "for": "u-1"}
    refused = await starlette_client.post("/reports/new", headers=bearer(token))
    assert refused.status_code == 403  # Starlette's own answer to a missing scope


async def test_insufficient_scope_raised_in_a_starlette_route_answers_the_rfc_6750_way(starlette_client, issuer):
    refused = await starlette_client.post("/reports/rfc6750", headers=bearer(issuer.mint(scope="reports:read")))
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert 'scope="reports:write"' in refused.headers["www-authenticate"]


async def test_an_exempt_path_passes_as_an_unauthenticated_user(starlette_client):
    body = (await starlette_client.get("/healthz")).json()
    assert body["authenticated"] is False and body["scopes"] == []


async def test_a_starlette_app_still_refuses_a_request_without_a_token(starlette_client):
    refused = await starlette_client.get("/whoami")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="api"'


async def test_fastapi_routes_read_request_user_beside_the_dependency(verifier, issuer):
    app = FastAPI()
    app.add_middleware(BearerAuthMiddleware, verifier=verifier)
    install_error_handlers(app)
    auth = Authenticated(verifier, token_url=f"{ISSUER}/token")

    @app.get("/mine")
    @requires("reports:read")
    async def mine(request: Request, claims: dict[str, Any] = Security(auth)) -> dict[str, Any]:
        return {"user": request.user.identity, "scopes": request.auth.scopes, "same": claims == request.user.claims}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client:
        ok = await client.get("/mine", headers=bearer(issuer.mint(scope="reports:read")))
        assert ok.json() == {"user": "u-1", "scopes": ["reports:read"], "same": True}
        assert (await client.get("/mine", headers=bearer(issuer.mint(scope="")))).status_code == 403


async def test_the_dependency_alone_sets_request_user_when_no_middleware_ran(verifier, issuer):
    app = FastAPI()
    install_error_handlers(app)
    auth = Authenticated(verifier, token_url=f"{ISSUER}/token")

    @app.get("/mine")
    async def mine(request: Request, claims: dict[str, Any] = Security(auth, scopes=["reports:read"])) -> Any:
        return {"user": request.user.identity, "scopes": request.auth.scopes}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client:
        ok = await client.get("/mine", headers=bearer(issuer.mint()))
        assert ok.json() == {"user": "u-1", "scopes": ["reports:read"]}
        assert (await client.get("/mine")).status_code == 401


def test_the_user_repr_names_the_subject_but_never_the_claims():
    from resource_service.principal import TokenUser

    user = TokenUser({"sub": "u-1", "jti": "secret-ish", "scope": "a b"})
    assert repr(user) == "TokenUser(identity='u-1')"
