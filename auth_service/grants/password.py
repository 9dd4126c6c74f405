"""`grant_type=password` (RFC 6749 section 4.3): a username and password for a login session.

The attempt is reserved against the login limits before the hash; the session (refresh
family) is stored only if what the hash checked still stands when it is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clients import Caller
from ..clock import Clock
from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest
from ..forms import Form, require
from ..login import PasswordCheck
from ..passwords import MAX_PASSWORD_LENGTH
from ..storage import FamilyStore, RevocationStore
from ..tokens import TokenMinter, new_id
from .common import (
    Tokens,
    audience,
    client_scope,
    grant_scope,
    requested_resource,
    requested_scope,
    security,
    stored_refresh,
)

MAX_USERNAME_LENGTH = 256


@dataclass(frozen=True, slots=True)
class PasswordRequest:
    username: str
    password: str
    scope: frozenset[str]
    resource: str | None

    @classmethod
    def parse(cls, form: Form) -> PasswordRequest:
        username, password = require(form, "username"), require(form, "password")
        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            raise InvalidRequest("username or password too long")
        return cls(username, password, requested_scope(form), requested_resource(form))


class PasswordGrant:
    def __init__(
        self,
        *,
        settings: Settings,
        passwords: PasswordCheck,
        families: FamilyStore,
        revocations: RevocationStore,
        minter: TokenMinter,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._passwords = passwords
        self._families = families
        self._revocations = revocations
        self._minter = minter
        self._clock = clock

    async def __call__(self, form: Form, caller: Caller, address: str) -> Tokens:
        return await self.issue(PasswordRequest.parse(form), caller, address)

    async def issue(self, request: PasswordRequest, caller: Caller, address: str) -> Tokens:
        aud = audience(caller.client, request.resource, self._settings.audience)  # refused before any hash
        login = await self._passwords.check(
            request.username, request.password, client_id=caller.client_id, address=address
        )
        user = login.user
        scope = grant_scope(request.scope, client_scope(caller.client, user.scope))
        now = int(self._clock())
        floor = await self._revocations.revoked_before(user.id)
        sid = new_id()
        refresh = self._minter.refresh_token(
            sub=user.id,
            client_id=caller.client_id,
            scope=scope,
            sid=sid,
            now=now,
            iat_floor=floor,
            not_after=now + self._settings.session_max_lifetime,
        )
        record = stored_refresh(refresh, sid=sid, sub=user.id, client_id=caller.client_id, scope=scope, audience=aud)
        if not await self._families.start_family(record, login.credential):
            # The password changed, the user was disabled or removed, or their sessions were
            # revoked while this login was hashing: it must not outlive what it checked.
            security.warning("login_superseded", extra={"sub": user.id, "client_id": caller.client_id})
            raise InvalidGrant("the account changed during login; log in again")
        access = self._minter.access_token(
            sub=user.id,
            client_id=caller.client_id,
            scope=scope,
            audience=aud,
            sid=sid,
            username=user.username,
            now=now,
            iat_floor=floor,
        )
        security.info("login_success", extra={"sub": user.id, "sid": sid, "client_id": caller.client_id})
        return Tokens(access, scope, refresh)
