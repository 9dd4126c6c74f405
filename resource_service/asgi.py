"""Pure ASGI middleware: bearer authentication, and the replica id on every response.

Pure ASGI rather than `BaseHTTPMiddleware`: the bearer check runs on every
request, so it reads the raw header list from the scope and builds no Request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from contextvars import ContextVar
from typing import Any, Protocol

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .apidocs import STATIC_PATHS
from .errors import AuthError, InvalidRequest, MissingCredentials, render
from .jose import MAX_TOKEN_LENGTH
from .principal import authenticate

__all__ = ["BearerAuthMiddleware", "ReplicaIdMiddleware", "TokenVerifier", "bearer_token", "current_claims"]

logger = logging.getLogger(__name__)

DEFAULT_EXEMPT = ("/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", *STATIC_PATHS)

# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token, where
# b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=";
# the scheme name is case-insensitive (RFC 9110 section 11.1).
_B64TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
_MAX_AUTHORIZATION = len(b"Bearer ") + MAX_TOKEN_LENGTH

_POLICY_VIOLATION = 1008  # RFC 6455 section 7.4.1
_BEARER = b"Bearer "  # the spelling every client sends; any other takes the strict parse

_claims: ContextVar[dict[str, Any] | None] = ContextVar("resource_service_claims", default=None)


def current_claims() -> dict[str, Any] | None:
    """The claims `BearerAuthMiddleware` verified for the request being handled, else None.

    For routes on the hot path: unlike a `Request` parameter or a dependency, reading
    it costs FastAPI nothing per request. The same claims are `request.user.claims`.
    """
    return _claims.get()


class TokenVerifier(Protocol):
    """What the middleware needs from a verifier (`resource_service.Verifier` is one).

    A verifier may also offer `cached(token: bytes) -> dict | None`, a synchronous answer
    for a token it accepted before (see `Verifier.cached`); the middleware tries it first.
    """

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
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer" and value[:6].lower() != b"bearer":
        # RFC 6750 section 3.1: a client trying another authentication method gets the
        # bare challenge, with no error code, as one that sent nothing.
        raise MissingCredentials("the request uses another authentication scheme than Bearer")
    token = token.lstrip(b" ")
    body = token.rstrip(b"=")
    # translate(None, allowed) deletes every allowed byte: anything left is not b64token.
    if scheme.lower() != b"bearer" or not body or body.translate(None, _B64TOKEN_CHARS):
        raise InvalidRequest("the Authorization header is not 'Bearer <token>'")
    return token.decode("ascii")


class BearerAuthMiddleware:
    """Refuses http requests without a valid bearer token; sets `scope["user"]` (a
    `TokenUser`, with the claims) and `scope["auth"]` (a `TokenCredentials`, with the
    token's scopes) as Starlette's `AuthenticationMiddleware` does, and the claims in
    `current_claims()`.

    Websocket handshakes are held to the same rule, by their Authorization header:
    a refused one is answered before accept, with the 401/403 and its challenge when
    the server offers the `websocket.http.response` extension, else closed with 1008
    (policy violation; the server then answers the handshake with 403). Paths in
    `exempt` (health checks, API docs) pass with an `UnauthenticatedUser`, websocket
    ones included; lifespan scopes pass untouched.

    A token the verifier accepted before, sent as `Bearer <token>`, is answered by the
    verifier's `cached` without parsing the header again (the bytes are the ones that
    passed); every other header takes `bearer_token`'s strict parse and `verify`.
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, *, exempt: Collection[str] = DEFAULT_EXEMPT) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt = frozenset(exempt)
        self._cached: Callable[[bytes], dict[str, Any] | None] | None = getattr(verifier, "cached", None)
        # Outcomes are counted here, once per request, when the verifier keeps metrics
        # (`resource_service.Verifier` does unless RESOURCE_METRICS_ENABLED is false).
        metrics = getattr(verifier, "metrics", None)
        self._count_ok = metrics.ok if metrics is not None else None
        self._count_refused = metrics.refused if metrics is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.exempt:
            scope["user"], scope["auth"] = UnauthenticatedUser(), AuthCredentials()
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        claims = self._seen(headers)
        if claims is None:
            try:
                claims = await self.verifier.verify(bearer_token(headers))
            except AuthError as exc:
                logger.debug("request refused: %s", exc.reason)
                if self._count_refused is not None:
                    self._count_refused(exc.reason)
                await _refuse(exc, scope, receive, send)
                return
        if self._count_ok is not None:
            self._count_ok()
        authenticate(scope, claims)
        reset = _claims.set(claims)
        try:
            await self.app(scope, receive, send)
        finally:
            _claims.reset(reset)

    def _seen(self, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, Any] | None:
        """The verifier's cached answer for the one `Authorization: Bearer <token>`, else None."""
        cached = self._cached
        if cached is None:
            return None
        value: bytes | None = None
        for name, raw in headers:
            if name == b"authorization":
                if value is not None:
                    return None  # several: bearer_token refuses them
                value = raw
        if value is None or not value.startswith(_BEARER):
            return None
        return cached(value[len(_BEARER) :])


async def _refuse(exc: AuthError, scope: Scope, receive: Receive, send: Send) -> None:
    """The refusal as an HTTP response, or, for a websocket server that cannot send one,
    a close before accept."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": exc.error or "unauthorized"})
        return
    await render(exc)(scope, receive, send)


class ReplicaIdMiddleware:
    """Adds `x-replica-id` to every http response, so a client can see who answered."""

    def __init__(self, app: ASGIApp, replica_id: str) -> None:
        self.app = app
        self.header = (b"x-replica-id", replica_id.encode("ascii"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        header = self.header

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers")
                if type(headers) is list:  # Starlette's responses: a fresh list per response
                    headers.append(header)
                else:
                    message = {**message, "headers": [*(headers or ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
