"""Client authentication at the token, revocation and introspection endpoints.

RFC 6749 section 2.3.1: HTTP Basic with form-encoded id and secret, or both in the body
(`client_secret_post`), never both methods at once. Public clients send only `client_id`.
Failed secrets count against (client id, caller's address) and the address in the login
limiter, reserved before the hash, so a secret cannot be guessed at any endpoint faster than a
password, and a stranger's failures never refuse the client's correct secret.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from urllib.parse import unquote_plus

from fastapi import Request

from .clock import Clock
from .errors import InvalidClient, InvalidRequest, UnauthorizedClient
from .forms import Form, has_control_characters
from .metrics import Metrics
from .passwords import PasswordHasher
from .ratelimit import LoginLimiter, reserve_or_refuse
from .storage import Client, ClientStore

security = logging.getLogger("auth_service.security")

PUBLIC_CLIENT = "public"  # the registered client a request that names none is (e.g. Swagger UI)
MAX_CLIENT_ID = 128  # characters, for public and confidential clients alike
INTROSPECT_SCOPE = "introspect"  # a confidential client registered with it may introspect any token


@dataclass(frozen=True, slots=True)
class Caller:
    """A registered client, authenticated by its secret when it is confidential."""

    client: Client
    named: bool = True  # False: the request named no client, so it is the default `public`

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def confidential(self) -> bool:
        return not self.client.public

    @property
    def may_introspect_any(self) -> bool:
        return self.confidential and INTROSPECT_SCOPE in (self.client.scope or "").split()

    def owns(self, claims: dict[str, object]) -> bool:
        """True if the token these claims come from was issued to this caller."""
        return claims.get("client_id") == self.client_id

    def require_grant(self, grant_type: str) -> None:
        """RFC 6749 section 5.2: a client uses only the grants it is registered for."""
        if grant_type in self.client.grant_types:
            return
        if not self.named:  # nothing was asked of a named client: say what would work
            raise InvalidClient("client authentication required")
        raise UnauthorizedClient(f"the client is not registered for the {grant_type} grant")


class ClientAuthenticator:
    """Who is calling a client-authenticated endpoint (`/token`, `/revoke`, `/introspect`)."""

    def __init__(
        self, clients: ClientStore, hasher: PasswordHasher, limiter: LoginLimiter, *, clock: Clock, metrics: Metrics
    ) -> None:
        self._clients = clients
        self._hasher = hasher
        self._limiter = limiter
        self._clock = clock
        self._metrics = metrics

    async def caller(self, request: Request, form: Form) -> Caller:
        """The registered client calling; raises `InvalidClient` (an unknown id, a wrong or
        missing secret) or `InvalidRequest` (two authentication methods at once)."""
        basic = _basic_credentials(request)
        if basic == ("", ""):  # Swagger UI's default "Authorization header" when no client was typed:
            basic = None  # it names no client, so the caller is public, as if it sent no header
        posted = form.get("client_secret") or None  # Swagger UI posts an empty one when none was typed
        if basic and (posted is not None or form.get("client_id", basic[0]) not in (basic[0], "")):
            raise InvalidRequest("use one client authentication method, not two")
        if basic:
            client_id, secret = basic
        elif posted is not None:
            client_id, secret = form.get("client_id", ""), posted
        else:
            return await self._public(form.get("client_id"))
        if not client_id or len(client_id) > MAX_CLIENT_ID or len(secret) > 1024:
            raise InvalidClient("client authentication failed", basic=basic is not None)
        return await self._confidential(client_id, secret, client_address(request), basic=basic is not None)

    async def _public(self, client_id: str | None) -> Caller:
        """A caller without a secret: a registered public client, or the default one."""
        if client_id is not None and len(client_id) > MAX_CLIENT_ID:  # names no client we could register
            raise InvalidClient("client authentication failed")
        client = await self._clients.client(client_id or PUBLIC_CLIENT)
        if client is None:
            security.info("client_unknown", extra={"client_id": client_id or PUBLIC_CLIENT})
            raise InvalidClient("client authentication failed" if client_id else "client_id required")
        if not client.public:  # a confidential client must prove who it is; answered as an unknown
            raise InvalidClient("client authentication failed")  # id is, so no answer tells them apart
        return Caller(client, named=bool(client_id))

    async def _confidential(self, client_id: str, secret: str, address: str, *, basic: bool) -> Caller:
        attempt = await reserve_or_refuse(
            self._limiter,
            "client_secret",
            client_id,
            address,
            self._clock(),
            client_id=client_id,
            metrics=self._metrics,
        )
        try:
            client = await self._clients.client(client_id)
            ok = await self._hasher.verify(secret, client.secret_hash if client else None)
        except Exception:  # never judged (the store failed): the attempt is given back
            await self._limiter.settle(attempt, failed=False)
            raise
        await self._limiter.settle(attempt, failed=not ok)
        if not ok or client is None or client.secret_hash is None:
            security.info("client_auth_failure", extra={"client_id": client_id, "known_client": client is not None})
            raise InvalidClient("client authentication failed", basic=basic)
        return Caller(client)


def client_address(request: Request) -> str:
    """The caller's address as the limits and logs see it (the balancer's forwarded one when trusted)."""
    return request.client.host if request.client else "unknown"


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    headers = request.headers.getlist("authorization")
    if not headers:
        return None
    if len(headers) > 1:  # RFC 6749 section 5.2: "includes multiple credentials" is invalid_request
        raise InvalidRequest("several Authorization headers were sent")
    header = headers[0]
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("unsupported client authentication scheme", basic=True)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed HTTP Basic credentials", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed HTTP Basic credentials", basic=True)
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if has_control_characters(client_id) or has_control_characters(secret):  # the form's rule
        raise InvalidClient("malformed HTTP Basic credentials", basic=True)
    return client_id, secret
