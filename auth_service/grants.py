"""The three grants of `POST /token`: password, refresh_token, client_credentials.

Security events go to the `auth_service.security` log as an event name with ids in its
fields (sub, sid, jti, client_id), never with a token, password, secret or username.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, NoReturn

from .clients import Caller
from .config import Settings
from .errors import InvalidClient, InvalidGrant, InvalidRequest, InvalidScope, RateLimited, UnauthorizedClient
from .forms import parse_scope, require
from .passwords import MAX_PASSWORD_LENGTH, PasswordHasher
from .ratelimit import LoginLimiter, reserve_or_refuse
from .revocation import Revoker
from .storage import Credential, RefreshRecord, RotateOutcome, Store
from .storage.sql import username_key
from .tokens import Minted, TokenError, TokenMinter, new_id

if TYPE_CHECKING:
    from .metrics import AuthMetrics

security = logging.getLogger("auth_service.security")

MAX_USERNAME_LENGTH = 256
_RATE_WINDOW = 60  # seconds: AUTH_REFRESH_RATE counts refresh tokens per session per minute


class Grants:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        minter: TokenMinter,
        hasher: PasswordHasher,
        limiter: LoginLimiter,
        revoker: Revoker,
        *,
        metrics: AuthMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._store = store
        self._minter = minter
        self._hasher = hasher
        self._limiter = limiter
        self._revoker = revoker
        self._background: set[asyncio.Task[None]] = set()

    async def password(self, params: dict[str, str], caller: Caller, address: str) -> dict[str, Any]:
        username, password = require(params, "username"), require(params, "password")
        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            raise InvalidRequest("username or password too long")
        requested = parse_scope(params.get("scope"))
        key = username_key(username)
        attempt = await reserve_or_refuse(
            self._limiter, "login", key, address, time.time(), client_id=caller.client_id, metrics=self._metrics
        )
        try:
            # Before the check: a `sub` revocation appended after this voids the login.
            _, feed_head = await self._store.feed_head()
            user = await self._store.user_by_name(username)
            ok = await self._hasher.verify(password, user.password_hash if user else None)
        except Exception:  # never judged (the store failed): the attempt is given back
            await self._limiter.settle(attempt, failed=False)
            raise
        await self._limiter.settle(attempt, failed=not ok)
        if not ok or user is None or user.disabled_at is not None:
            if self._metrics is not None:
                self._metrics.login_failed()
            # The looked-up sub, never the name typed: a password typed into the username
            # field must not end up in the log.
            security.info(
                "login_failure", extra={"client_id": caller.client_id, "sub": user.id if user is not None else None}
            )
            raise InvalidGrant("invalid username or password")
        scope = _grant_scope(requested, user.scope)
        now = int(time.time())
        floor = await self._store.revoked_before(user.id)
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
        started = await self._store.start_family(
            RefreshRecord(
                jti=refresh.jti,
                sid=sid,
                sub=user.id,
                client_id=caller.client_id,
                scope=scope,
                issued_at=refresh.iat,
                expires_at=refresh.exp,
                used_at=None,
                family_revoked_at=None,
            ),
            Credential(user.password_hash, feed_head),
        )
        if not started:
            # The password changed, the user was disabled or removed, or their sessions were
            # revoked while this login was hashing: it must not outlive what it checked.
            security.warning("login_superseded", extra={"sub": user.id, "client_id": caller.client_id})
            raise InvalidGrant("the account changed during login; log in again")
        if self._hasher.needs_rehash(user.password_hash):
            self._spawn(self._rehash(user.id, password, user.password_hash))
        access = self._minter.access_token(
            sub=user.id,
            client_id=caller.client_id,
            scope=scope,
            sid=sid,
            username=user.username,
            now=now,
            iat_floor=floor,
        )
        security.info("login_success", extra={"sub": user.id, "sid": sid, "client_id": caller.client_id})
        return self._response(access, scope, refresh)

    async def refresh(self, params: dict[str, str], caller: Caller) -> dict[str, Any]:
        token = require(params, "refresh_token")
        now = int(time.time())
        try:
            claims = self._minter.read_refresh(token, now)
        except TokenError as exc:
            raise InvalidGrant(f"refresh token invalid: {exc.description}") from None
        if claims["client_id"] != caller.client_id:
            raise InvalidGrant("refresh token was issued to another client")
        # Every read before the rotation commits: a failure after it (the database going away)
        # would cost the client its new token, and its retry would then revoke the session.
        record = await self._stored(claims)
        user = await self._store.user_by_id(record.sub)
        if user is None or user.disabled_at is not None:
            await self._end_session(record)
        if record.used_at is None:  # a replay goes on to the rotation, which revokes the family
            await self._refuse_if_too_fast(record, now)
        granted = _intersect(record.scope, user.scope)
        scope = _grant_scope(parse_scope(params.get("scope")), granted) if params.get("scope") else granted
        session_end = (record.session_started_at or record.issued_at) + self._settings.session_max_lifetime
        if session_end <= now:
            raise InvalidGrant("the login session reached its maximum lifetime; log in again")
        floor = await self._store.revoked_before(claims["sub"])
        new = self._minter.refresh_token(
            sub=claims["sub"],
            client_id=caller.client_id,
            scope=granted,
            sid=claims["sid"],
            now=now,
            iat_floor=floor,
            not_after=session_end,
        )
        outcome = await self._store.rotate(
            claims["jti"],
            RefreshRecord(
                jti=new.jti,
                sid=claims["sid"],
                sub=claims["sub"],
                client_id=caller.client_id,
                scope=granted,
                issued_at=new.iat,
                expires_at=new.exp,
                used_at=None,
                family_revoked_at=None,
            ),
            now,
            self._revoker.horizon(now),
        )
        if outcome is RotateOutcome.REUSED:
            self._revoker.notify()
            if self._metrics is not None:  # the store appended a sid entry in the same transaction
                self._metrics.refresh_reused()
                self._metrics.revoked("sid")
            security.warning(
                "refresh_reuse",
                extra={"sub": claims["sub"], "sid": claims["sid"], "jti": claims["jti"], "client_id": caller.client_id},
            )
            raise InvalidGrant("refresh token already used; the session is revoked")
        if outcome is not RotateOutcome.ROTATED:
            self._revoker.notify()  # a family older than a `sub` entry was revoked just now
            raise InvalidGrant(f"refresh token {outcome.value}")
        access = self._minter.access_token(
            sub=claims["sub"],
            client_id=caller.client_id,
            scope=scope,
            sid=claims["sid"],
            username=user.username,
            now=now,
            iat_floor=floor,
        )
        return self._response(access, scope, new)

    async def client_credentials(self, params: dict[str, str], caller: Caller) -> dict[str, Any]:
        if caller.client is None:
            if caller.client_id and "client_id" in params:
                raise UnauthorizedClient("client_credentials is for confidential clients")
            raise InvalidClient("client authentication required")
        scope = _grant_scope(parse_scope(params.get("scope")), caller.client.scope)
        now = int(time.time())
        access = self._minter.access_token(
            sub=caller.client_id,
            client_id=caller.client_id,
            scope=scope,
            now=now,
            iat_floor=await self._store.revoked_before(caller.client_id),
        )
        security.info("client_credentials", extra={"client_id": caller.client_id})
        return self._response(access, scope, None)

    async def _stored(self, claims: dict[str, Any]) -> RefreshRecord:
        """The stored record of a validly signed refresh token; refused unless its ids agree."""
        record = await self._store.refresh_record(claims["jti"])
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
        issued = await self._store.refresh_times(record.sid, now - _RATE_WINDOW)
        if len(issued) < limit:
            return
        wait = issued[-limit] + _RATE_WINDOW - now  # until the oldest of the last `limit` leaves the window
        security.warning(
            "refresh_rate_limited",
            extra={"sub": record.sub, "sid": record.sid, "client_id": record.client_id, "retry_after": wait},
        )
        if self._metrics is not None:
            self._metrics.rate_limited("refresh")
        raise RateLimited(wait, "too many refreshes of this session; retry later")

    def _response(self, access: Minted, scope: str, refresh: Minted | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": self._settings.access_token_ttl,
            "scope": scope,
        }
        if refresh is not None:
            body["refresh_token"] = refresh.token
        return body

    async def _rehash(self, sub: str, password: str, old_hash: str) -> None:
        await self._store.set_password_hash(sub, await self._hasher.hash(password), changed_at=None, replaces=old_hash)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _intersect(granted: str, allowed: str) -> str:
    """What the session was granted and the user may still have today."""
    return " ".join(sorted(set(granted.split()) & set(allowed.split())))


def _grant_scope(requested: set[str], allowed: str) -> str:
    """RFC 6749 section 3.3: what is asked, if allowed; everything allowed when nothing is asked."""
    allowed_set = set(allowed.split())
    if not requested:
        return " ".join(sorted(allowed_set))
    if not requested <= allowed_set:
        raise InvalidScope("requested scope exceeds what was granted")
    return " ".join(sorted(requested))
