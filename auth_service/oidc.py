"""OpenID Connect's identity scopes and the claims each releases (Core sections 5.1 and 5.4).

`openid`, `profile` and `email` are about the person themselves: anyone signing in may grant
them, within what the client is registered for. API scopes still come from the user's own
`scope`.
"""

from __future__ import annotations

from typing import Any

from .storage import Client, User

IDENTITY_SCOPES = frozenset({"openid", "profile", "email"})
CLAIMS_SUPPORTED = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "sid",
    "at_hash",
    "azp",
    "name",
    "preferred_username",
    "email",
    "email_verified",
)


def with_identity(user_scope: str) -> str:
    """The scopes a person may grant: their own, and the identity scopes."""
    return " ".join(sorted(set(user_scope.split()) | IDENTITY_SCOPES))


def signin_scope(client: Client, user_scope: str, requested: frozenset[str]) -> str:
    """What a sign-in grants: the scopes asked for (all the client may have, when none were
    asked) that the person may grant, within the client's registration. A scope the user
    lacks is left out, not refused (RFC 6749 section 3.3: the response says what was granted)."""
    may = set(with_identity(user_scope).split())
    if client.scope is not None:
        may &= set(client.scope.split())
    wanted = requested or frozenset(may)
    return " ".join(sorted(wanted & may))


def user_claims(user: User, scope: str) -> dict[str, Any]:
    """The profile and email claims `scope` releases, where the user has them."""
    granted = set(scope.split())
    claims: dict[str, Any] = {}
    if "profile" in granted:
        claims["preferred_username"] = user.username
        if user.name:
            claims["name"] = user.name
    if "email" in granted and user.email:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    return claims
