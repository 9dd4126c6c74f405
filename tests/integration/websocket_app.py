"""A protected app with one websocket route, for test_websocket_auth (run under uvicorn).

RESOURCE_AUTH_URL=http://127.0.0.1:8000 uvicorn tests.integration.websocket_app:app
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket

from resource_service import BearerAuthMiddleware, ResourceSettings, Verifier, current_claims

verifier = Verifier(ResourceSettings())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await verifier.start()
    yield
    await verifier.stop()


app = FastAPI(lifespan=lifespan)
app.add_middleware(BearerAuthMiddleware, verifier=verifier)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/live")
async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    claims = current_claims() or {}
    await websocket.send_text(str(claims.get("sub")))
    await websocket.close()
