"""`grant_type=client_credentials` (RFC 6749 section 4.4): a confidential client, for itself."""

from __future__ import annotations

from dataclasses import dataclass

from ..clients import Caller
from ..clock import Clock
from ..config import Settings
from ..errors import UnauthorizedClient
from ..forms import Form
from ..storage import RevocationStore
from ..tokens import TokenMinter
from .common import Tokens, audience, grant_scope, requested_resource, requested_scope, security


@dataclass(frozen=True, slots=True)
class ClientCredentialsRequest:
    scope: frozenset[str]
    resource: str | None

    @classmethod
    def parse(cls, form: Form) -> ClientCredentialsRequest:
        return cls(requested_scope(form), requested_resource(form))


class ClientCredentialsGrant:
    def __init__(self, *, settings: Settings, revocations: RevocationStore, minter: TokenMinter, clock: Clock) -> None:
        self._settings = settings
        self._revocations = revocations
        self._minter = minter
        self._clock = clock

    async def __call__(self, form: Form, caller: Caller, address: str) -> Tokens:
        if not caller.confidential:  # registration refuses it; a row edited by hand is refused too
            raise UnauthorizedClient("client_credentials is for confidential clients")
        return await self.issue(ClientCredentialsRequest.parse(form), caller)

    async def issue(self, request: ClientCredentialsRequest, caller: Caller) -> Tokens:
        aud = audience(caller.client, request.resource, self._settings.audience)
        scope = grant_scope(request.scope, caller.client.scope or "")
        access = self._minter.access_token(
            sub=caller.client_id,
            client_id=caller.client_id,
            scope=scope,
            audience=aud,
            now=int(self._clock()),
            iat_floor=await self._revocations.revoked_before(caller.client_id),
        )
        security.info("client_credentials", extra={"client_id": caller.client_id})
        return Tokens(access, scope)
