"""An existing FastAPI app, protected by the verifier (docs/quickstart.md explains each line).

RESOURCE_AUTH_URL=http://127.0.0.1:8000 uvicorn examples.quickstart:app --port 8001
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Security

from resource_service import Authenticated, BearerAuthMiddleware, ResourceSettings, Verifier, install_error_handlers

settings = ResourceSettings()  # RESOURCE_AUTH_URL, RESOURCE_AUDIENCE, ... from the environment
verifier = Verifier(settings)
issuer = settings.expected_issuer  # the issuer's public URL, which browsers reach
auth = Authenticated(verifier, authorization_url=f"{issuer}/authorize", token_url=f"{issuer}/token")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await verifier.start()  # loads keys and revocations, then keeps them fresh in the background
    yield
    await verifier.stop()


# /docs signs in at the issuer's login page: authorization code with PKCE, as a public client.
docs_login = {"clientId": settings.docs_client_id, "usePkceWithAuthorizationCodeGrant": True}
app = FastAPI(title="Inventory", lifespan=lifespan, swagger_ui_init_oauth=docs_login)
app.add_middleware(BearerAuthMiddleware, verifier=verifier)  # every route needs a valid token
install_error_handlers(app)  # refusals raised in routes answer the RFC 6750 way


@app.get("/items")
async def items(claims: dict[str, Any] = Security(auth)) -> dict[str, Any]:
    return {"owner": claims["sub"], "items": ["hammer", "saw"]}


@app.delete("/items/{name}")
async def delete_item(name: str, claims: dict[str, Any] = Security(auth, scopes=["items:write"])) -> dict[str, str]:
    return {"deleted": name, "by": claims["sub"]}
