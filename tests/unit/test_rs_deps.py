"""resource_service.deps: the FastAPI dependency, its scope checks and its OpenAPI flow."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Security

from resource_service import Authenticated, BearerAuthMiddleware, InvalidToken, install_error_handlers

pytestmark = pytest.mark.anyio
TOKEN_URL = "https://auth.example/token"
TOKENS = {
    "reader.x.y": {"sub": "u-1", "scope": "reports:read"},
    "admin.x.y": {"sub": "u-2", "scope": "reports:read reports:write"},
    "noscope.x.y": {"sub": "u-3"},
}


class StubVerifier:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def verify(self, token: str) -> dict[str, Any]:
        self.seen.append(token)
        if token not in TOKENS:
            raise InvalidToken("token signature is invalid", reason="bad_signature")
        return dict(TOKENS[token])


def build(verifier: StubVerifier, *, middleware: bool = False) -> FastAPI:
    auth = Authenticated(
        verifier, token_url=TOKEN_URL, scopes={"reports:read": "Read reports", "reports:write": "Write reports"}
    )
    app = FastAPI()
    install_error_handlers(app)
    writers = APIRouter(dependencies=[Security(auth, scopes=["reports:read"])])

    @app.get("/reports")
    async def reports(claims: dict[str, Any] = Security(auth, scopes=["reports:read"])) -> dict[str, Any]:
        return {"sub": claims["sub"]}

    @app.get("/whoami")
    async def whoami(claims: dict[str, Any] = Security(auth)) -> dict[str, Any]:
        return {"sub": claims["sub"]}

    @writers.post("/reports")
    async def write(claims: dict[str, Any] = Security(auth, scopes=["reports:write"])) -> dict[str, Any]:
        return {"sub": claims["sub"]}

    app.include_router(writers)
    if middleware:
        app.add_middleware(BearerAuthMiddleware, verifier=verifier)
    return app


async def request(app: FastAPI, method: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client:
        return await client.request(method, path, headers=headers)


async def test_token_with_the_scope_is_let_through():
    response = await request(build(StubVerifier()), "GET", "/reports", "reader.x.y")
    assert response.status_code == 200 and response.json() == {"sub": "u-1"}


async def test_missing_scope_is_403_insufficient_scope_naming_the_scope():
    response = await request(build(StubVerifier()), "GET", "/reports", "noscope.x.y")
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and challenge.endswith('scope="reports:read"')


async def test_scopes_of_router_and_route_add_up():
    app = build(StubVerifier())
    assert (await request(app, "POST", "/reports", "reader.x.y")).status_code == 403
    response = await request(app, "POST", "/reports", "admin.x.y")
    assert response.status_code == 200


async def test_no_scopes_required_accepts_any_valid_token():
    assert (await request(build(StubVerifier()), "GET", "/whoami", "noscope.x.y")).status_code == 200


@pytest.mark.parametrize(
    ("token", "status", "challenge"),
    [
        (None, 401, 'Bearer realm="api"'),
        (
            "forged.x.y",
            401,
            'Bearer realm="api", error="invalid_token", error_description="token signature is invalid"',
        ),
    ],
)
async def test_without_middleware_the_dependency_verifies_and_refuses_in_rfc_6750_form(token, status, challenge):
    response = await request(build(StubVerifier()), "GET", "/reports", token)
    assert response.status_code == status and response.headers["www-authenticate"] == challenge


async def test_malformed_header_is_400_from_the_dependency_too():
    app = build(StubVerifier())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client:
        response = await client.get("/reports", headers={"authorization": "Bearer a,b"})
        other_scheme = await client.get("/reports", headers={"authorization": "Basic dXNlcg=="})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert other_scheme.status_code == 401 and "error" not in other_scheme.json()  # RFC 6750 section 3.1


async def test_with_the_middleware_the_token_is_verified_once():
    verifier = StubVerifier()
    assert (await request(build(verifier, middleware=True), "GET", "/reports", "reader.x.y")).status_code == 200
    assert verifier.seen == ["reader.x.y"]


def test_openapi_describes_the_password_flow_at_the_issuer_for_swagger_authorize():
    schema = build(StubVerifier()).openapi()
    scheme = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == TOKEN_URL
    assert set(scheme["flows"]["password"]["scopes"]) == {"reports:read", "reports:write"}
    assert schema["paths"]["/reports"]["get"]["security"] == [{"OAuth2PasswordBearer": ["reports:read"]}]
