"""Our verifier mounted the way docs/quickstart.md tells users to, around the baseline's route.

`app.add_middleware(BearerAuthMiddleware, verifier=verifier)` on a FastAPI app, the verifier
started in the lifespan, and the same `/me` as `bench.apps.noauth` (the token's claims, read
with `current_claims()`): the ratio to the baseline is what protecting an app this way costs.
Configured by `RESOURCE_*` variables as the quickstart is (the bench sets RESOURCE_AUTH_URL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import JSONResponse, Response

from bench.apps import run, serve_parser
from resource_service import BearerAuthMiddleware, ResourceSettings, Verifier, current_claims, install_error_handlers


def create_app() -> FastAPI:
    verifier = Verifier(ResourceSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await verifier.start()
        yield
        await verifier.stop()

    app = FastAPI(title="bench: quickstart", lifespan=lifespan)
    app.add_middleware(BearerAuthMiddleware, verifier=verifier)
    install_error_handlers(app)

    @app.get("/me")
    async def me() -> Response:
        return JSONResponse({"replica": "quickstart", "claims": current_claims()})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    run(create_app(), serve_parser(__doc__ or "").parse_args())
