"""The demo API that runs as many replicas behind the load balancer.

Every replica answers any request on its own: the middleware verifies the
token locally, and each response says which replica answered (`X-Replica-Id`),
so a client can watch the balancer spread its requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Security
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .asgi import BearerAuthMiddleware, ReplicaIdMiddleware
from .config import ResourceSettings
from .deps import Authenticated, install_error_handlers
from .verifier import Verifier

__all__ = ["create_app"]

SCOPES = {"reports:read": "Read reports"}


def create_app(settings: ResourceSettings, *, verifier: Verifier | None = None) -> FastAPI:
    """The demo API, wired to one `Verifier` that the app's lifespan starts and stops."""
    verifier = verifier if verifier is not None else Verifier(settings)
    replica = settings.replica_id
    replica_header = {"x-replica-id": replica}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await verifier.start()
        try:
            yield
        finally:
            await verifier.stop()

    app = FastAPI(title="Resource service (demo)", lifespan=lifespan)
    # The browser talks to the issuer's public URL, not the address we reach it at.
    auth = Authenticated(verifier, token_url=f"{settings.expected_issuer}/token", scopes=SCOPES)
    app.state.verifier = verifier

    # /me is the hot path: the middleware has verified the token; the route only
    # reads the claims from the scope. Its security is declared for OpenAPI by hand.
    @app.get("/me", openapi_extra={"security": [{auth.scheme_name: []}]})
    async def me(request: Request) -> Response:
        return JSONResponse({"replica": replica, "claims": request.scope["auth"]})

    @app.get("/reports")
    async def reports(claims: dict[str, Any] = Security(auth, scopes=["reports:read"])) -> dict[str, Any]:
        return {"replica": replica, "sub": claims["sub"], "reports": [{"id": 1, "total": 42}]}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "replica": replica, **verifier.status()}

    @app.get("/readyz")
    async def readyz() -> Response:
        checks = verifier.readiness()
        ready = all(result == "ok" for result in checks.values())
        return JSONResponse({"ready": ready, "replica": replica, "checks": checks, **verifier.status()},
                            status_code=200 if ready else 503)

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Sent by Starlette's outermost middleware, past ReplicaIdMiddleware: add it here.
        return PlainTextResponse("Internal Server Error", status_code=500, headers=replica_header)

    install_error_handlers(app)
    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(BearerAuthMiddleware, verifier=verifier)
    app.add_middleware(ReplicaIdMiddleware, replica_id=replica)  # outermost: sees every reply
    return app
