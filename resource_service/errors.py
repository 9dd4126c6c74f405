"""Why a request was refused, as values carrying their RFC 6750 code and status.

Every refusal, whether raised by the middleware, the FastAPI dependency or the
verifier, is one of these and becomes an HTTP response in one place: `render`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from starlette.responses import JSONResponse, Response

__all__ = [
    "AuthError",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "MissingCredentials",
    "Unavailable",
    "render",
]

REALM = "api"

# RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E and a scope
# token %x21 / %x23-5B / %x5D-7E, so neither may hold a quote or a backslash.
# Anything else is dropped rather than escaped: there is no escaping to get wrong.
_NOT_DESCRIPTION_CHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_NOT_SCOPE_CHAR = re.compile(r"[^\x21\x23-\x5b\x5d-\x7e]")


class AuthError(Exception):
    """Base of every refusal; `error` is the RFC 6750 code (None: no code at all)."""

    status_code: int = 401
    error: str | None = "invalid_token"

    def __init__(self, description: str, *, reason: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason or self.error or "unauthenticated"  # for logs, not clients

    def headers(self) -> dict[str, str]:
        params = [f'realm="{REALM}"']
        if self.error is not None:
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{_clean(self.description)}"')
        return {"WWW-Authenticate": "Bearer " + ", ".join(params)}


class InvalidRequest(AuthError):
    """The Authorization header is malformed (RFC 6750 section 3.1)."""

    status_code = 400
    error = "invalid_request"


class InvalidToken(AuthError):
    """The token is expired, revoked, malformed or fails a verification rule."""

    status_code = 401
    error = "invalid_token"


class MissingCredentials(AuthError):
    """No credential at all: RFC 6750 section 3.1 says answer without an error code."""

    status_code = 401
    error = None

    def __init__(self, description: str = "a bearer token is required") -> None:
        super().__init__(description, reason="missing_credentials")


class InsufficientScope(AuthError):
    """The token is valid but lacks a scope the resource needs."""

    status_code = 403
    error = "insufficient_scope"

    def __init__(self, scopes: Iterable[str], description: str | None = None) -> None:
        self.scopes = tuple(scopes)
        super().__init__(description or "the token lacks a required scope")

    def headers(self) -> dict[str, str]:
        scope = " ".join(_NOT_SCOPE_CHAR.sub("", s) for s in self.scopes)
        challenge = super().headers()["WWW-Authenticate"]
        return {"WWW-Authenticate": f'{challenge}, scope="{scope}"'}


class Unavailable(AuthError):
    """This replica cannot decide safely yet: no signing keys, or a stale revocation list.

    Not a statement about the token, so no Bearer challenge: a 503 the client may
    retry after `retry_after` seconds, possibly on another replica.
    """

    status_code = 503
    error = "temporarily_unavailable"

    def __init__(self, description: str, *, retry_after: float = 1.0) -> None:
        super().__init__(description, reason="unavailable")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


def _clean(text: str) -> str:
    return _NOT_DESCRIPTION_CHAR.sub("", text)


def render(exc: AuthError) -> Response:
    """The response for any refusal: status, challenge headers and a small JSON body."""
    body: dict[str, str] = {"error_description": _clean(exc.description)}
    if exc.error is not None:
        body = {"error": exc.error, **body}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers())
