"""The baseline: a FastAPI route with no authentication, returning what `/me` returns.

Every ratio in the suite divides by this app's req/s measured in the same run. Its body
has the shape and size of the demo API's `/me` (a replica name and an access token's
claims), so the ratio prices authentication, not JSON encoding.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import JSONResponse, Response
from starlette.types import Lifespan

from bench.apps import run, serve_parser

# The claims of a real access token (RFC 9068, see docs/wire.md), values of typical length.
CLAIMS = {
    "iss": "http://127.0.0.1:40000",
    "sub": "mJ0Yy3b2TqKcS8FvQe1w9g",
    "aud": "api",
    "client_id": "default",
    "scope": "",
    "sid": "4tq2N0xkB6mHcQ1pZ9sE7w",
    "preferred_username": "bench",
    "iat": 1764000000,
    "exp": 1764003600,
    "jti": "pX7vD2sQ9nK4bW1zR8cT5g",
}


def create_app(*, lifespan: Lifespan[FastAPI] | None = None) -> FastAPI:
    """The baseline app; `lifespan` lets a control that wraps it start what it needs."""
    app = FastAPI(title="bench: no auth", lifespan=lifespan)

    @app.get("/me")
    async def me() -> Response:
        return JSONResponse({"replica": "noauth", "claims": CLAIMS})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    run(create_app(), serve_parser(__doc__ or "").parse_args())
