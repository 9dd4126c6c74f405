"""Mint and read our own tokens: RFC 9068 access tokens and refresh tokens.

Reading reuses the verifier's strict parser (`resource_service.jose`): the issuer holds
its own tokens to the same rules as every replica does.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resource_service.jose import Key, TokenError, decode, key_from_jwk
from resource_service.revocation_sync import PUSH_AUDIENCE, PUSH_LIFETIME, PUSH_TYP

from .clock import Clock, system_clock
from .config import Settings
from .keys import KeyManager, sign

ACCESS_TYP = "at+jwt"
REFRESH_TYP = "rt+jwt"
ID_TOKEN_TYP = "JWT"  # OpenID Connect Core: an ID token is a plain JWT (never accepted as an access token)
SIGNIN_TYP = "signin+jwt"  # the sign-in pages' own state: what /authorize checked, carried by the form
_REFRESH_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid")


@dataclass(frozen=True, slots=True)
class Minted:
    token: str
    jti: str
    iat: int
    exp: int


_jitter = secrets.SystemRandom().random


def new_id() -> str:
    return secrets.token_urlsafe(16)


class TokenMinter:
    def __init__(
        self,
        settings: Settings,
        keys: KeyManager,
        *,
        clock: Clock = system_clock,
        random: Callable[[], float] = _jitter,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._clock = clock
        self._random = random  # in [0, 1): how much of the jitter one access token gets
        self._verify_keys: tuple[str, dict[str, Key]] = ("", {})

    def access_token(
        self,
        *,
        sub: str,
        client_id: str,
        scope: str,
        audience: str,
        now: int,
        iat_floor: int | None,
        sid: str | None = None,
        username: str | None = None,
    ) -> Minted:
        """An RFC 9068 access token for the API `audience`. Its lifetime is AUTH_ACCESS_TOKEN_TTL
        less a random part of AUTH_ACCESS_TOKEN_JITTER, so clients that logged in together do
        not all refresh in the same second; never more than the TTL, which revocation counts on."""
        claims: dict[str, Any] = {"aud": audience, "client_id": client_id, "scope": scope}
        if sid is not None:
            claims["sid"] = sid
        if username is not None:
            claims["preferred_username"] = username
        ttl = self._settings.access_token_ttl
        ttl -= int(ttl * self._settings.access_token_jitter * self._random())
        return self._mint(claims, typ=ACCESS_TYP, sub=sub, now=now, iat_floor=iat_floor, ttl=ttl)

    def refresh_token(
        self, *, sub: str, client_id: str, scope: str, sid: str, now: int, iat_floor: int | None, not_after: int
    ) -> Minted:
        """`not_after` caps `exp`: the end of the login session (AUTH_SESSION_MAX_LIFETIME)."""
        claims = {"aud": self._settings.issuer, "client_id": client_id, "scope": scope, "sid": sid}
        return self._mint(
            claims,
            typ=REFRESH_TYP,
            sub=sub,
            now=now,
            iat_floor=iat_floor,
            ttl=self._settings.refresh_token_ttl,
            not_after=not_after,
        )

    def read_refresh(self, token: str, now: float) -> dict[str, Any]:
        return decode(
            token,
            self._public_keys(),
            typ=REFRESH_TYP,
            issuer=self._settings.issuer,
            audience=self._settings.issuer,
            now=now,
            leeway=self._settings.leeway,
            required=_REFRESH_CLAIMS,
        )

    def read_access(self, token: str, now: float, audiences: frozenset[str]) -> dict[str, Any]:
        """One of our access tokens, for any of the `audiences` this issuer mints for."""
        return decode(
            token,
            self._public_keys(),
            typ=ACCESS_TYP,
            issuer=self._settings.issuer,
            audience=audiences,
            now=now,
            leeway=self._settings.leeway,
        )

    def id_token(
        self,
        *,
        sub: str,
        client_id: str,
        now: int,
        auth_time: int,
        sid: str,
        nonce: str | None,
        access_token: str,
        claims: dict[str, Any],
    ) -> str:
        """An OpenID Connect ID token for `client_id`, signed with the active key, with the
        `at_hash` of the access token issued beside it (Core section 3.1.3.6)."""
        kid, alg, key = self._keys.signing_key(now)
        payload: dict[str, Any] = {
            "iss": self._settings.issuer,
            "sub": sub,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self._settings.access_token_ttl,
            "auth_time": auth_time,
            "sid": sid,
            "at_hash": at_hash(access_token, alg),
            **claims,
        }
        if nonce is not None:
            payload["nonce"] = nonce
        return sign(payload, kid=kid, alg=alg, key=key, typ=ID_TOKEN_TYP)

    def read_id_token(self, token: str, now: float, client_ids: frozenset[str]) -> dict[str, Any]:
        """One of our ID tokens, for any registered client (RP-initiated logout's hint)."""
        return decode(
            token,
            self._public_keys(),
            typ=ID_TOKEN_TYP,
            issuer=self._settings.issuer,
            audience=client_ids,
            now=now,
            leeway=self._settings.leeway,
            required=("sub", "sid"),
        )

    def signed_state(self, data: dict[str, Any], *, now: int, ttl: int) -> str:
        """`data` signed for the sign-in pages' forms, readable by any instance for `ttl` seconds."""
        kid, alg, key = self._keys.signing_key(now)
        payload = {"iss": self._settings.issuer, "aud": self._state_audience, "iat": now, "exp": now + ttl, **data}
        return sign(payload, kid=kid, alg=alg, key=key, typ=SIGNIN_TYP)

    def read_state(self, token: str, now: float) -> dict[str, Any]:
        return decode(
            token,
            self._public_keys(),
            typ=SIGNIN_TYP,
            issuer=self._settings.issuer,
            audience=self._state_audience,
            now=now,
            leeway=0,
            required=(),
        )

    @property
    def _state_audience(self) -> str:
        return f"{self._settings.issuer}/authorize"

    def _mint(
        self,
        claims: dict[str, Any],
        *,
        typ: str,
        sub: str,
        now: int,
        iat_floor: int | None,
        ttl: int,
        not_after: int | None = None,
    ) -> Minted:
        # A `sub` + `before` revocation revokes tokens with iat < before. A token minted in
        # the same second after it would carry iat < before too: lift its iat to `before`.
        iat = max(now, iat_floor or 0)
        exp = iat + ttl if not_after is None else min(iat + ttl, not_after)
        jti = new_id()
        kid, alg, key = self._keys.signing_key(now)
        payload = {"iss": self._settings.issuer, "sub": sub, **claims, "iat": iat, "exp": exp, "jti": jti}
        token = sign(payload, kid=kid, alg=alg, key=key, typ=typ)
        return Minted(token=token, jti=jti, iat=iat, exp=exp)

    def signed_event(self, event: str, data: dict[str, Any], now: int | None = None) -> str:
        """A revocation push (event and data) as a JWS of its own `typ`, valid for a minute."""
        now = int(self._clock()) if now is None else now
        kid, alg, key = self._keys.signing_key(now)
        payload = {
            "iss": self._settings.issuer,
            "aud": PUSH_AUDIENCE,
            "iat": now,
            "exp": now + PUSH_LIFETIME,
            "event": event,
            "data": data,
        }
        return sign(payload, kid=kid, alg=alg, key=key, typ=PUSH_TYP)

    def _public_keys(self) -> dict[str, Key]:
        _, etag = self._keys.jwks()
        if self._verify_keys[0] != etag:
            self._verify_keys = (etag, {jwk["kid"]: key_from_jwk(jwk) for jwk in self._keys.public_jwks()})
        return self._verify_keys[1]


# Ed25519 under either name hashes with SHA-512, the hash inside Ed25519 (RFC 8032 section 5.1):
# the OpenID Connect working group's answer for EdDSA (connect issue 1125), and the OpenID
# Connect Token Hash Algorithms guide's for RFC 9864's Ed25519.
_AT_HASH = {
    "RS256": hashlib.sha256,
    "ES256": hashlib.sha256,
    "PS256": hashlib.sha256,
    "Ed25519": hashlib.sha512,
    "EdDSA": hashlib.sha512,
}


def at_hash(access_token: str, alg: str) -> str:
    """OpenID Connect Core 3.1.3.6: the left half of the access token's hash, base64url. The
    hash is the one of the signature's algorithm (`_AT_HASH`)."""
    digest = _AT_HASH.get(alg, hashlib.sha512)
    half = digest(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(half[: len(half) // 2]).rstrip(b"=").decode("ascii")


__all__ = [
    "ACCESS_TYP",
    "ID_TOKEN_TYP",
    "REFRESH_TYP",
    "SIGNIN_TYP",
    "Minted",
    "TokenError",
    "TokenMinter",
    "at_hash",
    "new_id",
]
