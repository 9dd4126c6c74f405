"""`request.user` and `request.auth` for a verified bearer token, as Starlette defines them.

`BearerAuthMiddleware` sets `scope["user"]` to a `TokenUser` and `scope["auth"]` to a
`TokenCredentials`, the way Starlette's own `AuthenticationMiddleware` does, so
`request.user.is_authenticated`, `request.auth.scopes` and
`starlette.authentication.requires("reports:read")` work in Starlette and FastAPI routes.
Both carry the verified claims: `request.user.claims`.

Both are built per request from the request's own copy of the claims; the scopes are
split from the `scope` claim (RFC 9068 section 2.2.3, RFC 8693 section 4.2) the first time
they are read, so a route that never looks costs nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import Scope

__all__ = ["TokenCredentials", "TokenUser", "authenticate"]


def authenticate(scope: Scope, claims: dict[str, Any]) -> None:
    """Mark the request as made by the verified token with `claims`, Starlette's way."""
    scope["user"], scope["auth"] = TokenUser(claims), TokenCredentials(claims)


class TokenUser(BaseUser):
    """The caller a verified access token names: `identity` is its `sub`, `claims` all of it."""

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def identity(self) -> str:
        """The `sub` claim: the issuer's stable, opaque id of the user (or of a client)."""
        return str(self.claims["sub"])

    @property
    def display_name(self) -> str:
        """`preferred_username` when the token carries it, else `sub`."""
        name = self.claims.get("preferred_username")
        return name if isinstance(name, str) and name else self.identity

    def __repr__(self) -> str:
        return f"TokenUser(identity={self.identity!r})"  # never the claims: they go to logs


class TokenCredentials(AuthCredentials):
    """The scopes a verified access token grants, split from its space-separated `scope`."""

    def __init__(self, claims: dict[str, Any]) -> None:  # no super().__init__: scopes are lazy
        self.claims = claims

    @property
    def scopes(self) -> list[str]:  # type: ignore[override]  # read-only, where Starlette's is an attribute
        granted = self.claims.get("scope")
        return granted.split() if isinstance(granted, str) else []
