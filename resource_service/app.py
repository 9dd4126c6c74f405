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
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .apidocs import install_docs
from .asgi import DEFAULT_EXEMPT, BearerAuthMiddleware, current_claims
from .config import ResourceSettings
from .deps import Authenticated, install_error_handlers
from .logs import RequestIdMiddleware
from .metrics import RequestTimer, metrics_endpoint
from .verifier import Verifier

__all__ = ["create_app"]

SCOPES = {"reports:read": "Read reports"}

# What the routes answer, for the OpenAPI document: every refusal is an RFC 6750 section 3
# response rendered by `errors.render`, and every response names the replica that sent it.
_REPLICA_ID = {
    "X-Replica-Id": {"required": True, "description": "The replica that answered", "schema": {"type": "string"}}
}
_CHALLENGE = {
    "WWW-Authenticate": {
        "required": True,
        "description": 'Bearer realm="api", with error and scope',
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _json(description: str, schema: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        "headers": {**headers, **_REPLICA_ID},
    }


def _refusal(errors: list[str], *, code_required: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error", "error_description"] if code_required else ["error_description"],
        "properties": {"error": {"type": "string", "enum": errors}, "error_description": {"type": "string"}},
    }


_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: _json("The Authorization header is malformed", _refusal(["invalid_request"]), _CHALLENGE),
    # No credential at all: a bare challenge without an error code (RFC 6750 section 3.1).
    401: _json(
        "No bearer token, or an invalid, expired or revoked one",
        _refusal(["invalid_token"], code_required=False),
        _CHALLENGE,
    ),
    503: _json(
        "This replica cannot decide yet (no keys, or a stale revocation list): retry",
        _refusal(["temporarily_unavailable"]),
        _RETRY_AFTER,
    ),
}
_INSUFFICIENT_SCOPE: dict[int | str, dict[str, Any]] = {
    403: _json("The token lacks a required scope", _refusal(["insufficient_scope"]), _CHALLENGE)
}
_STATUS = {
    "type": "object",
    "required": ["status", "replica"],
    "properties": {"status": {"const": "ok"}, "replica": {"type": "string"}},
}
_READINESS = {
    "type": "object",
    "required": ["ready", "replica", "checks"],
    "properties": {
        "ready": {"type": "boolean"},
        "replica": {"type": "string"},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


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

    # Swagger UI signs in at the issuer's login page (authorization code with PKCE, RFC 7636).
    docs_login = {"clientId": settings.docs_client_id, "usePkceWithAuthorizationCodeGrant": True, "scopes": [*SCOPES]}
    app = FastAPI(
        title="Resource service (demo)",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_init_oauth=docs_login,
    )
    install_docs(app)  # Swagger UI and ReDoc from this package, not a CDN
    # The browser talks to the issuer's public URL, not the address we reach it at.
    issuer = settings.expected_issuer
    auth = Authenticated(verifier, authorization_url=f"{issuer}/authorize", token_url=f"{issuer}/token", scopes=SCOPES)
    app.state.verifier = verifier

    # /me is the hot path: the middleware has verified the token; the route only
    # reads the claims it left. Its security is declared for OpenAPI by hand.
    @app.get(
        "/me",
        openapi_extra={"security": [{auth.scheme_name: []}]},
        responses={
            200: _json(
                "The verified claims of the caller's token",
                {
                    "type": "object",
                    "required": ["replica", "claims"],
                    "properties": {"replica": {"type": "string"}, "claims": {"type": "object"}},
                },
                {},
            ),
            **_REFUSALS,
        },
    )
    async def me() -> Response:
        return JSONResponse({"replica": replica, "claims": current_claims()})

    @app.get(
        "/reports",
        responses={
            200: _json(
                "The caller's reports",
                {
                    "type": "object",
                    "required": ["replica", "sub", "reports"],
                    "properties": {
                        "replica": {"type": "string"},
                        "sub": {"type": "string"},
                        "reports": {"type": "array", "items": {"type": "object"}},
                    },
                },
                {},
            ),
            **_REFUSALS,
            **_INSUFFICIENT_SCOPE,
        },
    )
    async def reports(claims: dict[str, Any] = Security(auth, scopes=["reports:read"])) -> dict[str, Any]:
        return {"replica": replica, "sub": claims["sub"], "reports": [{"id": 1, "total": 42}]}

    @app.get("/healthz", responses={200: _json("Alive, with how fresh its keys and list are", _STATUS, {})})
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "replica": replica, **verifier.status()}

    @app.get(
        "/readyz",
        responses={
            200: _json("Ready to decide requests", _READINESS, {}),
            503: _json("Not ready: no keys, never synced, or too stale", _READINESS, {}),
        },
    )
    async def readyz() -> Response:
        checks = verifier.readiness()
        ready = all(result == "ok" for result in checks.values())
        return JSONResponse(
            {"ready": ready, "replica": replica, "checks": checks, **verifier.status()},
            status_code=200 if ready else 503,
        )

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Sent by Starlette's outermost middleware, past RequestIdMiddleware (which adds the
        # request and replica ids to every other response): add both here.
        headers = {**replica_header, "x-request-id": request.scope["request_id"]}
        return PlainTextResponse("Internal Server Error", status_code=500, headers=headers)

    install_error_handlers(app)
    app.add_exception_handler(Exception, internal_error)
    if verifier.metrics is not None:  # RESOURCE_METRICS_ENABLED
        app.add_route("/metrics", metrics_endpoint(verifier), include_in_schema=False)
    # Exempt for Prometheus, which holds no token (keep the port off the public network);
    # exempt when disabled too, so the path answers 404, as at the issuer.
    app.add_middleware(BearerAuthMiddleware, verifier=verifier, exempt=(*DEFAULT_EXEMPT, "/metrics"))
    if settings.cors_origins:
        # Outside authentication: a preflight carries no token, and a refusal needs the CORS
        # headers too, or the page cannot read its status and WWW-Authenticate challenge.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["WWW-Authenticate", "Retry-After", "X-Replica-Id", "X-Request-Id"],
            max_age=600,
        )
    # One layer outside authentication does the request id (on every log line of the
    # request), the replica id header and the latency histogram: as three layers they
    # cost /me about 1 µs more a request (in-process: python -m bench.inprocess).
    timer = RequestTimer(verifier.metrics.latency, app.routes) if verifier.metrics is not None else None
    app.add_middleware(
        RequestIdMiddleware,
        access_log=settings.access_log,
        logger="resource_service.access",
        headers=[("x-replica-id", replica)],
        observe=timer,
    )
    return app
