"""What every grant shares: the token response, scope rules, and the parsing helpers.

Security events go to the `auth_service.security` log as an event name with ids in its
fields (sub, sid, jti, client_id), never with a token, password, secret or username.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from ..clients import Caller
from ..errors import InvalidScope
from ..forms import Form, parse_scope
from ..tokens import Minted

security = logging.getLogger("auth_service.security")


@dataclass(frozen=True, slots=True)
class Tokens:
    """A successful token response (RFC 6749 section 5.1)."""

    access: Minted
    scope: str
    expires_in: int
    refresh: Minted | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access.token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh is not None:
            body["refresh_token"] = self.refresh.token
        return body


class Grant(Protocol):
    """One `grant_type` of `POST /token`: parses its typed request from the form once, then
    issues tokens to the authenticated `caller` or raises an `OAuthError`."""

    async def __call__(self, form: Form, caller: Caller, address: str) -> Tokens: ...


def requested_scope(form: Form) -> frozenset[str]:
    return frozenset(parse_scope(form.get("scope")))


def intersect(granted: str, allowed: str) -> str:
    """What the session was granted and the user may still have today."""
    return " ".join(sorted(set(granted.split()) & set(allowed.split())))


def grant_scope(requested: frozenset[str], allowed: str) -> str:
    """RFC 6749 section 3.3: what is asked, if allowed; everything allowed when nothing is asked."""
    allowed_set = set(allowed.split())
    if not requested:
        return " ".join(sorted(allowed_set))
    if not requested <= allowed_set:
        raise InvalidScope("requested scope exceeds what was granted")
    return " ".join(sorted(requested))
