"""Client authentication at the token, revocation and introspection endpoints.

RFC 6749 section 2.3.1: HTTP Basic with form-encoded id and secret, or both in the body
(`client_secret_post`), never both methods at once. Public clients send only `client_id`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from fastapi import Request

from .errors import InvalidClient, InvalidRequest
from .passwords import PasswordHasher
from .storage import Client, Store

PUBLIC_CLIENT = "public"  # client_id of a caller that does not identify itself (e.g. Swagger UI)


@dataclass(frozen=True, slots=True)
class Caller:
    client_id: str
    client: Client | None  # None: a public client, not authenticated

    @property
    def confidential(self) -> bool:
        return self.client is not None


async def authenticate(request: Request, params: dict[str, str], store: Store,
                       hasher: PasswordHasher) -> Caller:
    basic = _basic_credentials(request)
    posted = params.get("client_secret") or None  # Swagger UI posts an empty one when none was typed
    if basic and (posted is not None or params.get("client_id", basic[0]) not in (basic[0], "")):
        raise InvalidRequest("use one client authentication method, not two")
    if basic:
        client_id, secret = basic
    elif posted is not None:
        client_id, secret = params.get("client_id", ""), posted
    else:
        client_id = params.get("client_id") or PUBLIC_CLIENT
        client = await store.client(client_id)
        if client is not None:  # a confidential client must prove who it is
            raise InvalidClient("client authentication required")
        return Caller(client_id=client_id, client=None)
    if not client_id or len(client_id) > 128 or len(secret) > 1024:
        raise InvalidClient("client authentication failed", basic=basic is not None)
    client = await store.client(client_id)
    if not await hasher.verify(secret, client.secret_hash if client else None):
        raise InvalidClient("client authentication failed", basic=basic is not None)
    return Caller(client_id=client_id, client=client)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
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
    return unquote_plus(client_id), unquote_plus(secret)
