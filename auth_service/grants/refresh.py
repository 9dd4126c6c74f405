"""`grant_type=refresh_token` (RFC 6749 section 6): rotate a refresh token, with reuse detection.

Each refresh retires the token presented and issues its successor in the same family (the
login session, `sid`). A retired token presented again means theft or replay: the store
revokes the whole family and appends a `sid` entry in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from ..clients import Caller
from ..clock import Clock
from ..config import Settings
from ..errors import InvalidGrant, RateLimited
from ..forms import Form, require
from ..metrics import Metrics
from ..oidc import with_identity
from ..revocation import Revoker
from ..storage import FamilyStore, RefreshRecord, RevocationStore, RotateOutcome, UserStore
from ..tokens import TokenError, TokenMinter
from .common import (
    Tokens,
    audience,
    client_scope,
    grant_scope,
    intersect,
    requested_resource,
    requested_scope,
    security,
    stored_refresh,
)

RATE_WINDOW = 60  # seconds: AUTH_REFRESH_RATE counts refresh tokens per session per minute


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    refresh_token: str
    scope: frozenset[str]  # empty: the session's scope
    resource: str | None  # None: the session's audience

    @classmethod
    def parse(cls, form: Form) -> RefreshRequest:
        return cls(require(form, "refresh_token"), requested_scope(form), requested_resource(form))


class RefreshGrant:
    def __init__(
        self,
        *,
        settings: Settings,
        users: UserStore,
        families: FamilyStore,
        revocations: RevocationStore,
        minter: TokenMinter,
        revoker: Revoker,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._users = users
        self._families = families
        self._revocations = revocations
        self._minter = minter
        self._revoker = revoker
        self._clock = clock
        self._metrics = metrics

    async def __call__(self, form: Form, caller: Caller, address: str) -> Tokens:
        return await self.issue(RefreshRequest.parse(form), caller)

    async def issue(self, request: RefreshRequest, caller: Caller) -> Tokens:
        now = int(self._clock())
        try:
            claims = self._minter.read_refresh(request.refresh_token, now)
        except TokenError as exc:
            raise InvalidGrant(f"refresh token invalid: {exc.description}") from None
        if claims["client_id"] != caller.client_id:
            raise InvalidGrant("refresh token was issued to another client")
        # Every read before the rotation commits: a failure after it (the database going away)
        # would cost the client its new token, and its retry would then revoke the session.
        record = await self._stored(claims)
        user = await self._users.user_by_id(record.sub)
        if user is None or user.disabled_at is not None:
            await self._end_session(record)
        if record.used_at is None:  # a replay goes on to the rotation, which revokes the family
            await self._refuse_if_too_fast(record, now)
        session_audience = record.audience or self._settings.audience
        aud = (
            session_audience
            if request.resource is None
            else audience(caller.client, request.resource, session_audience)
        )
        # The identity scopes a sign-in granted stay the person's to keep (oidc.py); API scopes
        # narrow to what the user and the client may have today.
        granted = intersect(record.scope, client_scope(caller.client, with_identity(user.scope)))
        scope = grant_scope(request.scope, granted) if request.scope else granted
        session_end = (record.session_started_at or record.issued_at) + self._settings.session_max_lifetime
        if session_end <= now:
            raise InvalidGrant("the login session reached its maximum lifetime; log in again")
        floor = await self._revocations.revoked_before(record.sub)
        new = self._minter.refresh_token(
            sub=record.sub,
            client_id=caller.client_id,
            scope=granted,
            sid=record.sid,
            now=now,
            iat_floor=floor,
            not_after=session_end,
        )
        successor = stored_refresh(new, sid=record.sid, sub=record.sub, client_id=caller.client_id, scope=granted)
        outcome = await self._families.rotate(
            record.jti, successor, now, self._revoker.horizon(now), grace=self._settings.refresh_reuse_grace
        )
        if outcome is RotateOutcome.JUST_RETIRED:
            security.warning(
                "refresh_reuse_in_grace",
                extra={"sub": record.sub, "sid": record.sid, "jti": record.jti, "client_id": caller.client_id},
            )
            raise InvalidGrant("refresh token already used; use the one its refresh returned")
        if outcome is RotateOutcome.REUSED:
            self._revoker.notify()
            self._metrics.refresh_reused()
            self._metrics.revoked("sid")  # the store appended a sid entry in the same transaction
            security.warning(
                "refresh_reuse",
                extra={"sub": record.sub, "sid": record.sid, "jti": record.jti, "client_id": caller.client_id},
            )
            raise InvalidGrant("refresh token already used; the session is revoked")
        if outcome is not RotateOutcome.ROTATED:
            self._revoker.notify()  # a family older than a `sub` entry was revoked just now
            raise InvalidGrant(f"refresh token {outcome.value}")
        access = self._minter.access_token(
            sub=record.sub,
            client_id=caller.client_id,
            scope=scope,
            audience=aud,
            sid=record.sid,
            username=user.username,
            now=now,
            iat_floor=floor,
        )
        return Tokens(access, scope, new)

    async def _stored(self, claims: dict[str, Any]) -> RefreshRecord:
        """The stored record of a validly signed refresh token; refused unless its ids agree."""
        record = await self._families.refresh_record(claims["jti"])
        if record is None:
            raise InvalidGrant(f"refresh token {RotateOutcome.UNKNOWN.value}")
        stored = {"sub": record.sub, "sid": record.sid, "client_id": record.client_id}
        differ = sorted(name for name, value in stored.items() if claims[name] != value)
        if differ:
            # Signed by our key yet not what we stored: a key compromise or a bug, never a client's slip.
            security.warning("refresh_claims_mismatch", extra={"jti": record.jti, **stored, "differ": differ})
            raise InvalidGrant("refresh token does not match its session")
        return record

    async def _end_session(self, record: RefreshRecord) -> NoReturn:
        """The user is gone or disabled: the session ends here, at every replica too."""
        security.warning(
            "refresh_user_inactive", extra={"sub": record.sub, "sid": record.sid, "client_id": record.client_id}
        )
        await self._revoker.sid(record.sid)
        raise InvalidGrant("the user is disabled or removed; the session is revoked")

    async def _refuse_if_too_fast(self, record: RefreshRecord, now: int) -> None:
        limit = self._settings.refresh_rate
        issued = await self._families.refresh_times(record.sid, now - RATE_WINDOW)
        if len(issued) < limit:
            return
        wait = issued[-limit] + RATE_WINDOW - now  # until the oldest of the last `limit` leaves the window
        security.warning(
            "refresh_rate_limited",
            extra={"sub": record.sub, "sid": record.sid, "client_id": record.client_id, "retry_after": wait},
        )
        self._metrics.rate_limited("refresh")
        raise RateLimited(wait, "too many refreshes of this session; retry later")
