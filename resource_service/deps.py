"""FastAPI dependency: the request's verified claims, with OAuth scope checks.

    auth = Authenticated(
        verifier,
        authorization_url="https://auth.example/authorize",
        token_url="https://auth.example/token",
        scopes={"reports:read": "Read reports"},
    )

    @app.get("/reports")
    async def reports(claims: dict = Security(auth, scopes=["reports:read"])): ...

It carries an OAuth2 scheme only so the OpenAPI document describes how to get a
token: with `authorization_url`, the authorization code flow (Swagger UI's
"Authorize" button then signs in at the issuer's own login page, with PKCE when
its init_oauth asks, and never sees the password); without, the password flow.
The header itself is read with our strict rules, not that scheme's.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from fastapi import Depends, Request
from fastapi.security import OAuth2, OAuth2AuthorizationCodeBearer, OAuth2PasswordBearer, SecurityScopes
from starlette.applications import Starlette
from starlette.responses import Response

from .asgi import TokenVerifier, bearer_token
from .errors import AuthError, InsufficientScope, render
from .principal import TokenUser, authenticate

__all__ = ["Authenticated", "install_error_handlers"]


class Authenticated:
    """Claims of the request's access token, which must grant the declared scopes.

    Uses the claims `BearerAuthMiddleware` put in `scope["user"]` when it ran;
    otherwise verifies the Authorization header itself, and sets `scope["user"]` and
    `scope["auth"]` as the middleware would.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        token_url: str,
        authorization_url: str | None = None,
        scopes: Mapping[str, str] | None = None,
    ) -> None:
        self.verifier = verifier
        self._metrics = getattr(verifier, "metrics", None)  # a ResourceMetrics, or None
        self.scheme: OAuth2 = (
            OAuth2AuthorizationCodeBearer(
                authorizationUrl=authorization_url, tokenUrl=token_url, scopes=dict(scopes or {}), auto_error=False
            )
            if authorization_url is not None
            else OAuth2PasswordBearer(tokenUrl=token_url, scopes=dict(scopes or {}), auto_error=False)
        )
        # FastAPI reads a dependency's parameters from its signature. Declaring this
        # instance's scheme as a sub-dependency puts the flow in OpenAPI.
        signature = inspect.signature(type(self).__call__, eval_str=True)
        params = list(signature.parameters.values())[1:]  # without self
        params[-1] = params[-1].replace(default=Depends(self.scheme))
        self.__signature__ = signature.replace(parameters=params)

    @property
    def scheme_name(self) -> str:
        """The OpenAPI security scheme name, for routes that declare it by hand."""
        return self.scheme.scheme_name

    async def __call__(
        self,
        request: Request,
        security_scopes: SecurityScopes,
        _openapi_credential: str | None = None,  # the scheme's parse, unused
    ) -> dict[str, Any]:
        user = request.scope.get("user")
        if isinstance(user, TokenUser):
            claims = user.claims
        else:
            # No middleware decided this request: count its outcome here, once.
            try:
                claims = await self.verifier.verify(bearer_token(request.scope["headers"]))
            except AuthError as exc:
                if self._metrics is not None:
                    self._metrics.refused(exc.reason)
                raise
            if self._metrics is not None:
                self._metrics.ok()
            authenticate(request.scope, claims)
        required = security_scopes.scopes
        if required:
            granted = claims.get("scope")
            granted_set = set(granted.split()) if isinstance(granted, str) else set()
            if not granted_set.issuperset(required):
                if self._metrics is not None:
                    self._metrics.refused("insufficient_scope")
                raise InsufficientScope(required)
        return claims


async def _handle_auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return render(exc)


def install_error_handlers(app: Starlette) -> None:
    """Render refusals raised in routes and dependencies as RFC 6750 responses (a FastAPI
    app, or any Starlette one)."""
    app.add_exception_handler(AuthError, _handle_auth_error)
