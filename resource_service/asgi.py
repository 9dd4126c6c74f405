"""Pure ASGI middleware: bearer authentication, and the replica id on every response.

Pure ASGI rather than `BaseHTTPMiddleware`: the bearer check runs on every
request, so it reads the raw header list from the scope and builds no Request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import AuthError, InvalidRequest, MissingCredentials, render
from .jose import MAX_TOKEN_LENGTH

__all__ = ["BearerAuthMiddleware", "ReplicaIdMiddleware", "TokenVerifier", "bearer_token"]

logger = logging.getLogger(__name__)

DEFAULT_EXEMPT = ("/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")

# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token; the scheme name is
# case-insensitive (RFC 9110 section 11.1).
_BEARER = re.compile(rb"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*)")
_MAX_AUTHORIZATION = len(b"Bearer ") + MAX_TOKEN_LENGTH


class TokenVerifier(Protocol):
    """What the middleware needs from a verifier (`resource_service.Verifier` is one)."""

    async def verify(self, token: str) -> dict[str, Any]: ...


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's bearer token, read strictly; raises `MissingCredentials` or `InvalidRequest`."""
    value: bytes | None = None
    for name, raw in headers:
        if name == b"authorization":  # ASGI servers lowercase header names
            if value is not None:
                raise InvalidRequest("several Authorization headers were sent")
            value = raw
    if value is None:
        raise MissingCredentials()
    value = value.strip(b" \t")
    if len(value) > _MAX_AUTHORIZATION:
        raise InvalidRequest("the Authorization header is too long")
    match = _BEARER.fullmatch(value)
    if match is None:
        raise InvalidRequest("the Authorization header is not 'Bearer <token>'")
    return match.group(1).decode("ascii")


class BearerAuthMiddleware:
    """Refuses http requests without a valid bearer token; puts the claims in `scope["auth"]`.

    Paths in `exempt` (health checks, API docs) pass untouched. Lifespan and
    websocket scopes pass untouched too: a websocket endpoint authenticates itself.
    """

    def __init__(
        self, app: ASGIApp, verifier: TokenVerifier, *, exempt: Collection[str] = DEFAULT_EXEMPT
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        try:
            scope["auth"] = await self.verifier.verify(bearer_token(scope["headers"]))
        except AuthError as exc:
            logger.debug("request refused: %s", exc.reason)
            await render(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class ReplicaIdMiddleware:
    """Adds `x-replica-id` to every http response, so a client can see who answered."""

    def __init__(self, app: ASGIApp, replica_id: str) -> None:
        self.app = app
        self.header = (b"x-replica-id", replica_id.encode("ascii"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
