"""One error family for the auth service; each class carries its RFC 6749 section 5.2 code.

Errors are raised once, anywhere below the routes, and rendered once by `install_handlers`.
The description is written for the client: it never contains a token, password or secret.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from resource_service.logs import current_request_id

from .storage.unavailable import CANDIDATES as STORAGE_FAILURES
from .storage.unavailable import database_unavailable

log = logging.getLogger("auth_service")

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client went away


class OAuthError(Exception):
    error = "invalid_request"
    status_code = 400

    def __init__(self, description: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": self.error, "error_description": self.description}
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **self.headers}
        return JSONResponse(body, status_code=self.status_code, headers=headers)


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str, *, basic: bool = False) -> None:
        # RFC 6749 5.2: 401 with WWW-Authenticate when the client tried HTTP Basic.
        super().__init__(description, headers={"WWW-Authenticate": 'Basic realm="auth"'} if basic else None)


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    error = "invalid_target"  # RFC 8707 section 2: a `resource` the client may not ask for


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"  # RFC 7009 section 2.2.1


class BearerRefused(OAuthError):
    """A Bearer credential refused at /logout or /admin, rendered the RFC 6750 way: the challenge
    carries the code (and, for insufficient_scope, the scope needed: section 3)."""

    def __init__(self, description: str, *, scope: str | None = None) -> None:
        needed = f', scope="{_quote(scope)}"' if scope else ""
        challenge = f'Bearer realm="auth", error="{self.error}"{needed}, error_description="{_quote(description)}"'
        super().__init__(description, headers={"WWW-Authenticate": challenge})


class BearerRequired(OAuthError):
    """RFC 6750 section 3.1: no credential, or another scheme than Bearer, gets the bare
    challenge, without an error code in it."""

    error = "invalid_request"
    status_code = 401

    def __init__(self, description: str = "bearer token required") -> None:
        super().__init__(description, headers={"WWW-Authenticate": 'Bearer realm="auth"'})


class InvalidToken(BearerRefused):
    error = "invalid_token"
    status_code = 401


class MalformedBearer(BearerRefused):
    """RFC 6750 section 3.1 invalid_request (400). Section 3: a request without a usable
    access token MUST get the challenge, a malformed one included."""

    error = "invalid_request"
    status_code = 400


class InsufficientScope(BearerRefused):
    """RFC 6750 section 3.1: a valid token that may not do this; `scope` names what it needs."""

    error = "insufficient_scope"
    status_code = 403


class ResourceNotFound(OAuthError):
    error = "not_found"
    status_code = 404


class ResourceConflict(OAuthError):
    error = "conflict"
    status_code = 409


class RateLimited(OAuthError):
    error = "temporarily_unavailable"
    status_code = 429

    def __init__(self, retry_after: int, description: str = "too many login attempts; retry later") -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(description, headers={"Retry-After": str(self.retry_after)})


class Unavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str, retry_after: int = 1) -> None:
        super().__init__(description, headers={"Retry-After": str(retry_after)})


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def install_handlers(app: FastAPI) -> None:
    """Render every failure as an RFC 6749 body: never a stack trace, never a bare 500 page."""

    @app.exception_handler(OAuthError)
    async def _oauth(_: Request, exc: OAuthError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in err.get("loc", ())[1:]) or "body" for err in exc.errors()})
        return InvalidRequest(f"invalid parameter: {', '.join(fields)}"[:200]).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return JSONResponse(
            {"error": code, "error_description": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> Response:
        # The client hung up before its body was read: nobody reads an answer. 499 is nginx's
        # "client closed request", so the access line and the metrics tell it from a failure.
        log.debug("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's outermost middleware runs this after RequestIdMiddleware has finished
        # (unless _storage calls it): put the request's id back on the log line and the answer.
        request_id = request.scope.get("request_id") if current_request_id() is None else None
        log.error(
            "unhandled error on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc_info=exc,
            extra={"request_id": request_id} if request_id else None,
        )
        return JSONResponse(
            {"error": "server_error", "error_description": "internal error"},
            status_code=500,
            headers={"x-request-id": request_id} if request_id else None,
        )

    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        # Registered per class, so Starlette's ExceptionMiddleware answers and nothing re-raises
        # the error to the server (which would log it again and close the connection).
        if not database_unavailable(exc):
            return await _unexpected(request, exc)
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return Unavailable("storage unavailable; retry later").response()

    for candidate in STORAGE_FAILURES:
        if issubclass(candidate, Exception):  # every one is; the tuple is typed as BaseException
            app.add_exception_handler(candidate, _storage)
