"""The client registry as one service layer: the CLI and the admin HTTP API both call it.

Every caller is a registered client (RFC 6749 section 2): public (no secret) or confidential
(its secret stored hashed, Argon2id), each with the grants it may use, its redirect URIs
(RFC 8252 and RFC 9700 rules, compared later as exact strings), its allowed scopes and the
APIs (RFC 8707 audiences) it may ask tokens for. Every change is one security event naming
the client and the `actor` who asked, never the secret.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from .clock import Clock, system_clock
from .directory import Invalid, NotFound
from .errors import InvalidRequest
from .forms import has_control_characters, parse_scope
from .grants import GRANT_TYPES
from .passwords import MAX_PASSWORD_LENGTH, MIN_SECRET_LENGTH
from .revocation import Revoker
from .storage import Client, ClientStore

security = logging.getLogger("auth_service.security")

_CLIENT_ID = re.compile(r"[!-~]{1,128}")  # RFC 6749 appendix A.1 VSCHARs, without the space
MAX_REDIRECT_URI = 2000
MAX_NAME = 200
MAX_AUDIENCE = 256
_LOOPBACK_NAMES = {"localhost"}


class Hasher(Protocol):
    async def hash(self, password: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Registration:
    """What `clients add` asks for; checked by `Registry.add`."""

    client_id: str
    public: bool
    grant_types: Sequence[str] = ()  # empty: client_credentials for a confidential client
    redirect_uris: Sequence[str] = ()
    post_logout_redirect_uris: Sequence[str] = ()
    scope: str = ""
    audiences: Sequence[str] = ()
    name: str = ""
    first_party: bool = False


class Registry:
    def __init__(self, clients: ClientStore, revoker: Revoker, hasher: Hasher, clock: Clock = system_clock) -> None:
        self._clients = clients
        self._revoker = revoker
        self._hasher = hasher
        self._clock = clock

    async def add(self, registration: Registration, secret: str | None, *, actor: str) -> tuple[Client, str | None]:
        """Register a client; (client, the secret generated when `secret` was None and the
        client is confidential). Raises `Invalid`, or `Conflict` when the id is taken."""
        client = _checked(registration, created_at=int(self._clock()))
        generated = None
        if not registration.public:
            if secret is None:
                secret = generated = secrets.token_urlsafe(32)
            client = replace(client, secret_hash=await self._hasher.hash(_checked_secret(secret)))
        elif secret is not None:
            raise Invalid("a public client has no secret")
        await self._clients.add_client(client)
        security.info("client_added", extra={"client_id": client.client_id, "actor": actor, "public": client.public})
        return client, generated

    async def clients(self) -> list[Client]:
        return await self._clients.clients()

    async def client(self, client_id: str) -> Client:
        client = await self._clients.client(client_id)
        if client is None:
            raise NotFound(f"no client {client_id!r}")
        return client

    async def rotate_secret(self, client_id: str, secret: str | None, *, actor: str) -> str | None:
        """A new secret for a confidential client; the old one stops working at once. Returns
        the secret generated when `secret` was None."""
        client = await self.client(client_id)
        if client.public:
            raise Invalid(f"client {client_id!r} is public: it has no secret")
        generated = None
        if secret is None:
            secret = generated = secrets.token_urlsafe(32)
        if not await self._clients.set_client_secret(client_id, await self._hasher.hash(_checked_secret(secret))):
            raise NotFound(f"no client {client_id!r}")
        security.info("client_secret_rotated", extra={"client_id": client_id, "actor": actor})
        return generated

    async def remove(self, client_id: str, *, actor: str) -> int:
        """Delete the client; its login sessions and its own tokens are revoked at every
        replica. Returns how many revocation entries that appended."""
        now = int(self._clock())
        entries = await self._clients.remove_client(client_id, now, self._revoker.horizon(now))
        if entries is None:
            raise NotFound(f"no client {client_id!r}")
        self._revoker.notify()
        security.info("client_removed", extra={"client_id": client_id, "actor": actor, "revocations": len(entries)})
        return len(entries)


def client_view(client: Client) -> dict[str, Any]:
    """A client as JSON for output: everything but the secret's hash."""
    return {
        "client_id": client.client_id,
        "type": "public" if client.public else "confidential",
        "name": client.name,
        "grant_types": list(client.grant_types),
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "scope": client.scope,  # null: any scope the user holds (the default `public` client)
        "audiences": list(client.audiences),
        "first_party": client.first_party,
        "created_at": client.created_at,
    }


def _checked(registration: Registration, *, created_at: int) -> Client:
    if not _CLIENT_ID.fullmatch(registration.client_id):
        raise Invalid("client_id must be 1 to 128 printable ASCII characters without spaces")
    grants = tuple(dict.fromkeys(registration.grant_types)) or (() if registration.public else ("client_credentials",))
    if not grants:
        raise Invalid("a public client needs at least one --grant")
    unknown = [grant for grant in grants if grant not in GRANT_TYPES]
    if unknown:
        raise Invalid(f"unknown grant {unknown[0]!r}: this issuer serves {', '.join(GRANT_TYPES)}"[:200])
    if registration.public and "client_credentials" in grants:
        raise Invalid("client_credentials is for confidential clients (RFC 6749 section 4.4)")
    try:
        scope = " ".join(sorted(parse_scope(registration.scope)))
    except InvalidRequest:
        raise Invalid("scope must be space-separated RFC 6749 scope tokens") from None
    audiences = tuple(dict.fromkeys(registration.audiences))
    for aud in audiences:
        if not aud or len(aud) > MAX_AUDIENCE or has_control_characters(aud) or " " in aud or "#" in aud:
            raise Invalid("an audience is 1 to 256 characters without spaces or a fragment")
    if len(registration.name) > MAX_NAME or has_control_characters(registration.name):
        raise Invalid(f"name must be at most {MAX_NAME} characters without control characters")
    return Client(
        client_id=registration.client_id,
        secret_hash=None,
        scope=scope,
        grant_types=grants,
        redirect_uris=tuple(check_redirect_uri(uri) for uri in dict.fromkeys(registration.redirect_uris)),
        post_logout_redirect_uris=tuple(
            check_redirect_uri(uri) for uri in dict.fromkeys(registration.post_logout_redirect_uris)
        ),
        audiences=audiences,
        name=registration.name,
        first_party=registration.first_party,
        created_at=created_at,
    )


def _checked_secret(secret: str) -> str:
    if len(secret) < MIN_SECRET_LENGTH:
        raise Invalid(f"client secret shorter than {MIN_SECRET_LENGTH} characters")
    if len(secret) > MAX_PASSWORD_LENGTH or has_control_characters(secret):
        raise Invalid(f"a client secret is at most {MAX_PASSWORD_LENGTH} characters without control characters")
    return secret


def check_redirect_uri(uri: str) -> str:
    """A redirect URI as RFC 9700 section 2.1 and RFC 8252 sections 7.1-7.3 allow it: absolute,
    without a fragment or user info; https, or http on a loopback host, or a private-use scheme
    in reverse-domain form (`com.example.app:/callback`). Returned unchanged: compared exactly."""
    if not uri or len(uri) > MAX_REDIRECT_URI or has_control_characters(uri) or " " in uri:
        raise Invalid(f"a redirect URI is 1 to {MAX_REDIRECT_URI} characters without spaces")
    if "#" in uri:
        raise Invalid("a redirect URI has no fragment (RFC 6749 section 3.1.2)")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise Invalid("a redirect URI must be an absolute URI") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise Invalid("a redirect URI must be absolute")
    if parts.username is not None or parts.password is not None:
        raise Invalid("a redirect URI has no user info")
    if scheme == "https":
        if not host:
            raise Invalid("an https redirect URI names a host")
        return uri
    if scheme == "http":
        if host is None or not _loopback(host):
            raise Invalid("http redirect URIs are for loopback only (RFC 8252 section 7.3); use https")
        return uri
    if "." in scheme:  # RFC 8252 section 7.1: a private-use scheme is a reversed domain name
        return uri
    raise Invalid("a redirect URI is https, http on loopback, or a reverse-domain private-use scheme")


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
