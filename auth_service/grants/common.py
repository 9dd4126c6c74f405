"""What every grant shares: the token response, scope rules, and the parsing helpers.

Security events go to the `auth_service.security` log as an event name with ids in its
fields (sub, sid, jti, client_id), never with a token, password, secret or username.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from ..clients import Caller
from ..errors import InvalidScope, InvalidTarget
from ..forms import Form, parse_scope
from ..storage import Client, RefreshRecord
from ..tokens import Minted

MAX_RESOURCE = 256  # characters of a `resource` (an audience is stored in at most this)

security = logging.getLogger("auth_service.security")


@dataclass(frozen=True, slots=True)
class Tokens:
    """A successful token response (RFC 6749 section 5.1)."""

    access: Minted
    scope: str
    refresh: Minted | None = None
    id_token: str | None = None  # OpenID Connect: the `openid` scope through the code flow

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access.token,
            "token_type": "Bearer",
            "expires_in": self.access.exp - self.access.iat,
            "scope": self.scope,
        }
        if self.refresh is not None:
            body["refresh_token"] = self.refresh.token
        if self.id_token is not None:
            body["id_token"] = self.id_token
        return body


class Grant(Protocol):
    """One `grant_type` of `POST /token`: parses its typed request from the form once, then
    issues tokens to the authenticated `caller` or raises an `OAuthError`."""

    async def __call__(self, form: Form, caller: Caller, address: str) -> Tokens: ...


def stored_refresh(
    refresh: Minted,
    *,
    sid: str,
    sub: str,
    client_id: str,
    scope: str,
    audience: str | None = None,
    login_session: str | None = None,
) -> RefreshRecord:
    """The row a new refresh token is stored as (a family's first, or a rotation's successor)."""
    return RefreshRecord(
        jti=refresh.jti,
        sid=sid,
        sub=sub,
        client_id=client_id,
        scope=scope,
        issued_at=refresh.iat,
        expires_at=refresh.exp,
        used_at=None,
        family_revoked_at=None,
        audience=audience,
        login_session=login_session,
    )


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


def requested_resource(form: Form) -> str | None:
    """RFC 8707 section 2: the API the token is for. One per request: the form refuses repeats."""
    resource = form.get("resource")
    if resource is None:
        return None
    if not resource or len(resource) > MAX_RESOURCE or "#" in resource:
        raise InvalidTarget("resource must name an API (no fragment, at most 256 characters)")
    return resource


def client_scope(client: Client, user_scope: str) -> str:
    """What a user may get through this client: their scopes, within the client's allow-list."""
    return user_scope if client.scope is None else intersect(user_scope, client.scope)


def audience(client: Client, resource: str | None, default: str) -> str:
    """The `aud` of an access token: the `resource` asked for, if the client may ask for it;
    else the client's only audience (AUTH_AUDIENCE when it was registered without one)."""
    allowed = client.audiences or (default,)
    if resource is None:
        if len(allowed) > 1:
            raise InvalidTarget("name the API with `resource`: this client is registered for several")
        return allowed[0]
    if resource not in allowed:
        raise InvalidTarget("the client is not registered for this resource")
    return resource
