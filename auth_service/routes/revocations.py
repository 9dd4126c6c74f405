"""The revocation feed: `GET /revocations` (pull) and `GET /revocations/stream` (SSE push).

Public like a JWKS or an X.509 CRL: entries carry opaque ids and times, nothing personal.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..revocation import PAGE_LIMIT
from ..services import services
from .responses import REVOCATION_PULL, errors, ok

router = APIRouter(tags=["revocation"])


@router.get("/revocations", summary="Revocation entries after a cursor, or a full snapshot",
            responses={**ok(REVOCATION_PULL), **errors(400, 503)})
async def pull(request: Request,
               after: int | None = Query(None, ge=0, le=2**62, description="cursor of the last entry applied"),
               feed: str | None = Query(None, max_length=64, description="the feed id the cursor belongs to"),
               limit: int = Query(PAGE_LIMIT, ge=1, le=PAGE_LIMIT, description="most entries in this answer"),
               ) -> JSONResponse:
    body = await services(request).feed.pull(after, feed, limit)
    return JSONResponse(body, headers={"Cache-Control": "no-cache"})


@router.get("/revocations/stream", summary="Server-sent events: new entries and heartbeats",
            response_class=StreamingResponse,
            responses={200: {"description": "`heartbeat` and `revocation` events (docs/wire.md, \"Push\")",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def stream(request: Request) -> StreamingResponse:
    return StreamingResponse(services(request).feed.subscribe(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
