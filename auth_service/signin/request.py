"""The authorization request (RFC 6749 section 4.1.1, RFC 7636 section 4.3, OpenID Connect
Core section 3.1.2.1), checked in the order RFC 6749 section 4.1.2.1 needs: until the client
and its redirect URI are trusted, an error is a page, never a redirect; after, it is a
redirect to that URI with `error`, `state` and `iss`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..errors import InvalidRequest, InvalidTarget
from ..forms import has_control_characters, parse_scope
from ..grants.common import MAX_RESOURCE, audience
from ..storage import Client, ClientStore

MAX_QUERY = 8192  # bytes of a query string
MAX_STATE = 1024
MAX_NONCE = 512
MAX_LOGIN_HINT = 256
MAX_SCOPE = 1024
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256): 32 bytes, no padding
_PROMPTS = frozenset({"none", "login", "consent", "select_account"})


class Untrusted(Exception):
    """Refused before the redirect URI is trusted: shown as a page, never redirected."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class Refused(Exception):
    """An error for the client, sent to its trusted redirect URI (RFC 6749 section 4.1.2.1)."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri, self.state, self.error, self.description = redirect_uri, state, error, description


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    state: str | None
    scope: frozenset[str]  # empty: all the client may have
    audience: str  # the `aud` of the access token (RFC 8707 `resource`, or the client's default)
    code_challenge: str
    nonce: str | None = None
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str | None = None

    def as_claims(self) -> dict[str, Any]:
        """The request as the sign-in forms carry it (signed, see `TokenMinter.signed_state`)."""
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "scope": " ".join(sorted(self.scope)),
            "audience": self.audience,
            "code_challenge": self.code_challenge,
            "nonce": self.nonce,
            "prompt": " ".join(sorted(self.prompt)),
            "max_age": self.max_age,
            "login_hint": self.login_hint,
        }

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> AuthorizationRequest:
        return cls(
            client_id=str(claims["client_id"]),
            redirect_uri=str(claims["redirect_uri"]),
            state=claims.get("state"),
            scope=frozenset(str(claims.get("scope", "")).split()),
            audience=str(claims["audience"]),
            code_challenge=str(claims["code_challenge"]),
            nonce=claims.get("nonce"),
            prompt=frozenset(str(claims.get("prompt", "")).split()),
            max_age=claims.get("max_age"),
            login_hint=claims.get("login_hint"),
        )


def redirect_location(redirect_uri: str, params: dict[str, str | None]) -> str:
    """The redirect URI with `params` added to its query (RFC 6749 section 4.1.2: keep what is there)."""
    query = urlencode({name: value for name, value in params.items() if value is not None})
    return f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}"


async def parse_request(
    pairs: Sequence[tuple[str, str]], clients: ClientStore, default_audience: str
) -> tuple[Client, AuthorizationRequest]:
    """The checked request and its client, or `Untrusted` / `Refused`."""
    params, repeated = _single(pairs)
    client_id, redirect_uri = params.get("client_id"), params.get("redirect_uri")
    if "client_id" in repeated or "redirect_uri" in repeated:
        raise Untrusted("client_id and redirect_uri may be sent once each")
    if not client_id:
        raise Untrusted("the request names no client (client_id is missing)")
    client = await clients.client(client_id) if len(client_id) <= 128 else None
    if client is None:
        raise Untrusted("the application is not registered here")
    if not redirect_uri:
        raise Untrusted("the request has no redirect_uri")
    if redirect_uri not in client.redirect_uris:  # exact string comparison (RFC 9700 section 4.1.3)
        raise Untrusted("the redirect_uri is not one registered for this application")
    state = params.get("state")
    if "state" in repeated or (state is not None and len(state) > MAX_STATE):
        state = None  # never echo what we refused

    def refuse(error: str, description: str) -> Refused:
        return Refused(redirect_uri, state, error, description)

    if repeated:
        raise refuse("invalid_request", f"parameter {sorted(repeated)[0]!r} repeated"[:100])
    if "request" in params:
        raise refuse("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise refuse("request_uri_not_supported", "request_uri is not supported")
    if params.get("state") is not None and len(params["state"]) > MAX_STATE:
        raise refuse("invalid_request", f"state longer than {MAX_STATE} characters")
    if params.get("response_type") != "code":
        raise refuse("unsupported_response_type", "response_type must be code")
    if params.get("response_mode", "query") != "query":
        raise refuse("invalid_request", "response_mode must be query")
    if "authorization_code" not in client.grant_types:
        raise refuse("unauthorized_client", "the client is not registered for the authorization code grant")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if not challenge:
        raise refuse("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if method != "S256":
        raise refuse("invalid_request", "code_challenge_method must be S256")
    if not _CHALLENGE.fullmatch(challenge):
        raise refuse("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
    scope_text = params.get("scope", "")
    try:
        scope = frozenset(parse_scope(scope_text)) if len(scope_text) <= MAX_SCOPE else None
    except InvalidRequest:
        scope = None
    if scope is None:
        raise refuse("invalid_scope", "malformed scope")
    if client.scope is not None and not scope <= set(client.scope.split()):
        raise refuse("invalid_scope", "the client is not registered for this scope")
    resource = params.get("resource")
    try:
        if resource is not None and (not resource or len(resource) > MAX_RESOURCE or "#" in resource):
            raise InvalidTarget("resource must name an API (no fragment, at most 256 characters)")
        aud = audience(client, resource, default_audience)
    except InvalidTarget as exc:
        raise refuse(exc.error, exc.description) from None
    nonce = params.get("nonce")
    if nonce is not None and (not nonce or len(nonce) > MAX_NONCE):
        raise refuse("invalid_request", f"nonce must be 1 to {MAX_NONCE} characters")
    prompt = frozenset(params.get("prompt", "").split())
    if not prompt <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise refuse("invalid_request", "prompt is none, or any of login, consent and select_account")
    max_age_text = params.get("max_age")
    if max_age_text is not None and not (max_age_text.isdigit() and len(max_age_text) <= 9):
        raise refuse("invalid_request", "max_age must be a number of seconds")
    hint = params.get("login_hint")
    if hint is not None and len(hint) > MAX_LOGIN_HINT:
        hint = None  # a hint, never an error
    return client, AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        state=params.get("state"),
        scope=scope,
        audience=aud,
        code_challenge=challenge,
        nonce=nonce,
        prompt=prompt,
        max_age=None if max_age_text is None else int(max_age_text),
        login_hint=hint,
    )


def _single(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """Each parameter once (RFC 6749 section 3.1), and the names sent more than once."""
    params: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in pairs:
        if has_control_characters(value):
            raise Untrusted(f"parameter {name[:40]!r} contains control characters")
        if name in params:
            repeated.add(name)
        params[name] = value
    return params, repeated
