"""The revocation feed: `GET /revocations` (pull) and `GET /revocations/stream` (SSE push).

Public like a JWKS or an X.509 CRL: entries carry opaque ids and times, nothing personal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..clients import client_address
from ..conditional import accepts_gzip, none_match
from ..deps import FeedDep, MetricsDep, PullBudgetDep, SettingsDep, StreamsDep
from ..errors import RateLimited
from ..feed_pages import GZIP_FROM
from ..ratelimit import address_bucket
from ..revocation import PAGE_DEFAULT, PAGE_LIMIT
from .responses import REVOCATION_PULL, errors, ok

router = APIRouter(tags=["revocation"])

STREAM_RETRY_AFTER = 10  # seconds; meanwhile a replica pulls, as it does whenever push is down


@router.get(
    "/revocations",
    summary="Revocation entries after a cursor, or a full snapshot",
    responses={
        **ok(REVOCATION_PULL),
        304: {"description": "Not Modified: `If-None-Match` holds this page's ETag"},
        **errors(400, 429, 503),
    },
)
async def pull(
    request: Request,
    revocation_feed: FeedDep,
    budget: PullBudgetDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    after: int | None = Query(None, ge=0, le=2**62, description="cursor of the last entry applied"),
    feed: str | None = Query(None, max_length=64, description="the feed id the cursor belongs to"),
    limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_LIMIT, description="most entries in this answer"),
) -> Response:
    address = address_bucket(client_address(request))
    pulled = await revocation_feed.pull(after, feed, limit, may_render=lambda n: budget.spend(address, n))
    if pulled is None:
        metrics.rate_limited("revocation_pull")
        raise RateLimited(
            budget.retry_after(address), "too many revocation entries pulled from this address; retry later"
        )
    page, max_age = pulled.page, settings.revocation_pull_max_age
    gzipped = len(page.body) >= GZIP_FROM and accepts_gzip(request.headers.get("accept-encoding"))
    etag = page.gzip_etag if gzipped else page.etag
    headers = {
        "Cache-Control": f"public, max-age={max_age}" if max_age else "no-cache",
        "ETag": etag,
        "Vary": "Accept-Encoding",
        # A header, not in the cached bytes: this request's read of the feed (docs/wire.md).
        "Feed-Read-At": f"{pulled.read_at:.3f}",
    }
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return Response(revocation_feed.gzipped(page), media_type="application/json", headers=headers)
    return Response(page.body, media_type="application/json", headers=headers)


@router.get(
    "/revocations/stream",
    summary="Server-sent events: new entries and heartbeats",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": '`heartbeat` and `revocation` events (docs/wire.md, "Push")',
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(429),
    },
)
async def stream(
    request: Request, revocation_feed: FeedDep, streams: StreamsDep, metrics: MetricsDep
) -> StreamingResponse:
    address = address_bucket(client_address(request))
    if not streams.take(address):
        metrics.rate_limited("revocation_stream")
        raise RateLimited(STREAM_RETRY_AFTER, "too many revocation streams open; pull /revocations meanwhile")
    return _HeldStream(
        revocation_feed.subscribe(),
        release=lambda: streams.give_back(address),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _HeldStream(StreamingResponse):
    """A stream that gives its slot back however it ends (client gone, shutdown, error)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
