"""The browser sign-in over SQLAlchemy Core: `SqlStore`'s half for login sessions, codes and consents.

A code is redeemed by a conditional UPDATE (`used_at IS NULL`) in the transaction that also
stores the family it starts, so of several exchanges, on one instance or many, exactly one
wins, and a replay always finds the family to revoke.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .protocols import AuthorizationCode, Credential, LoginSession, RedeemOutcome, RefreshRecord, RevocationEntry
from .sql_sessions import insert_family, lock_user, login_stands, revoke_family_in
from .tables import authorization_codes, consents, families, login_sessions, users

CODE_REPLAY_MEMORY = 600  # seconds a used code is kept past its expiry, so a late replay still revokes


class SignInRows:
    """SignInStore; mixed into `SqlStore`, which provides the engines."""

    _writer: AsyncEngine
    _read: Callable[[], AbstractAsyncContextManager[AsyncConnection]]

    # -- login sessions ----------------------------------------------------------------

    async def start_login_session(
        self, session: LoginSession, cookie_hash: str, checked: Credential, *, replaces: str | None = None
    ) -> bool:
        async with self._writer.begin() as conn:
            if not await login_stands(conn, session.sub, checked):
                return False
            if replaces is not None:  # signed in again (prompt=login, max_age): the session's apps move along
                mine = and_(login_sessions.c.id == replaces, login_sessions.c.sub == session.sub)
                moved = await conn.execute(update(login_sessions).where(mine).values(ended_at=session.auth_time))
                if moved.rowcount == 1:
                    await conn.execute(
                        update(families).where(families.c.login_session == replaces).values(login_session=session.id)
                    )
            await conn.execute(
                insert(login_sessions).values(
                    id=session.id,
                    cookie_hash=cookie_hash,
                    sub=session.sub,
                    auth_time=session.auth_time,
                    expires_at=session.expires_at,
                    ended_at=None,
                )
            )
        return True

    async def login_session(self, cookie_hash: str, now: int) -> LoginSession | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(login_sessions)
                    .join(users, users.c.id == login_sessions.c.sub)
                    .where(
                        and_(
                            login_sessions.c.cookie_hash == cookie_hash,
                            login_sessions.c.ended_at.is_(None),
                            login_sessions.c.expires_at > now,
                            users.c.disabled_at.is_(None),
                            users.c.password_changed_at <= login_sessions.c.auth_time,
                        )
                    )
                )
            ).first()
        return _session(row) if row else None

    async def end_login_session(self, session_id: str, now: int, revocation_expires_at: int) -> list[RevocationEntry]:
        async with self._writer.begin() as conn:
            ended = await conn.execute(
                update(login_sessions)
                .where(and_(login_sessions.c.id == session_id, login_sessions.c.ended_at.is_(None)))
                .values(ended_at=now)
            )
            if ended.rowcount != 1:
                return []
            live = and_(
                families.c.login_session == session_id, families.c.revoked_at.is_(None), families.c.expires_at > now
            )
            sids = list((await conn.execute(select(families.c.sid).where(live).order_by(families.c.sid))).scalars())
            appended = [await revoke_family_in(conn, sid, now, revocation_expires_at) for sid in sids]
        return [entry for entry in appended if entry is not None]

    async def family_login_session(self, sid: str) -> str | None:
        async with self._read() as conn:
            value = (await conn.execute(select(families.c.login_session).where(families.c.sid == sid))).scalar()
        return None if value is None else str(value)

    # -- authorization codes -----------------------------------------------------------

    async def add_code(self, code: AuthorizationCode) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                insert(authorization_codes).values(
                    code_hash=code.code_hash,
                    client_id=code.client_id,
                    redirect_uri=code.redirect_uri,
                    code_challenge=code.code_challenge,
                    nonce=code.nonce,
                    scope=code.scope,
                    audience=code.audience,
                    sub=code.sub,
                    login_session=code.login_session,
                    auth_time=code.auth_time,
                    sid=code.sid,
                    expires_at=code.expires_at,
                    used_at=None,
                )
            )

    async def authorization_code(self, code_hash: str) -> AuthorizationCode | None:
        async with self._read() as conn:
            row = (
                await conn.execute(select(authorization_codes).where(authorization_codes.c.code_hash == code_hash))
            ).first()
        return _code(row) if row else None

    async def redeem_code(
        self, code_hash: str, first: RefreshRecord, now: int, revocation_expires_at: int
    ) -> RedeemOutcome:
        async with self._writer.begin() as conn:
            row = (
                await conn.execute(select(authorization_codes).where(authorization_codes.c.code_hash == code_hash))
            ).first()
            if row is None:
                return RedeemOutcome.UNKNOWN
            code = _code(row)
            if code.used_at is None and code.expires_at <= now:
                return RedeemOutcome.EXPIRED
            used = await conn.execute(
                update(authorization_codes)
                .where(and_(authorization_codes.c.code_hash == code_hash, authorization_codes.c.used_at.is_(None)))
                .values(used_at=now)
            )
            if used.rowcount != 1:  # RFC 6749 section 4.1.2: refuse, and revoke what the code issued
                await revoke_family_in(conn, code.sid, now, revocation_expires_at)
                return RedeemOutcome.REPLAYED
            if not await _session_stands(conn, code, now):
                return RedeemOutcome.SESSION_ENDED
            await insert_family(conn, first)
            return RedeemOutcome.REDEEMED

    # -- consents ----------------------------------------------------------------------

    async def consent(self, sub: str, client_id: str) -> str | None:
        async with self._read() as conn:
            value = (
                await conn.execute(
                    select(consents.c.scope).where(and_(consents.c.sub == sub, consents.c.client_id == client_id))
                )
            ).scalar()
        return None if value is None else str(value)

    async def grant_consent(self, sub: str, client_id: str, scope: str, now: int) -> None:
        which = and_(consents.c.sub == sub, consents.c.client_id == client_id)
        async with self._writer.begin() as conn:
            before = (await conn.execute(select(consents.c.scope).where(which))).scalar()
            if before is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(consents).values(sub=sub, client_id=client_id, scope=scope, granted_at=now)
                        )
                    return
                except IntegrityError:  # granted in another tab meanwhile: merge below
                    before = (await conn.execute(select(consents.c.scope).where(which))).scalar() or ""
            merged = " ".join(sorted(set(str(before).split()) | set(scope.split())))
            await conn.execute(update(consents).where(which).values(scope=merged, granted_at=now))

    async def consents(self, sub: str) -> list[tuple[str, str, int]]:
        async with self._read() as conn:
            rows = (
                await conn.execute(select(consents).where(consents.c.sub == sub).order_by(consents.c.client_id))
            ).all()
        return [(row.client_id, row.scope, row.granted_at) for row in rows]

    async def revoke_consent(self, sub: str, client_id: str) -> bool:
        async with self._writer.begin() as conn:
            removed = await conn.execute(
                delete(consents).where(and_(consents.c.sub == sub, consents.c.client_id == client_id))
            )
        return removed.rowcount == 1

    async def prune_sign_in(self, now: int) -> int:
        async with self._writer.begin() as conn:
            codes = await conn.execute(
                delete(authorization_codes).where(authorization_codes.c.expires_at <= now - CODE_REPLAY_MEMORY)
            )
            sessions = await conn.execute(
                delete(login_sessions).where(
                    or_(login_sessions.c.expires_at <= now, login_sessions.c.ended_at <= now - CODE_REPLAY_MEMORY)
                )
            )
        return codes.rowcount + sessions.rowcount


async def _session_stands(conn: AsyncConnection, code: AuthorizationCode, now: int) -> bool:
    """The code's login session is live and its user unchanged since `auth_time`; the user's
    row stays locked until the family is stored (serialised with `revoke_subject`)."""
    user = await lock_user(conn, code.sub)
    if user is None or user.disabled_at is not None or user.password_changed_at > code.auth_time:
        return False
    live = (
        await conn.execute(
            select(login_sessions.c.id).where(
                and_(
                    login_sessions.c.id == code.login_session,
                    login_sessions.c.ended_at.is_(None),
                    login_sessions.c.expires_at > now,
                )
            )
        )
    ).first()
    return live is not None


def _session(row: Row[Any]) -> LoginSession:
    return LoginSession(id=row.id, sub=row.sub, auth_time=row.auth_time, expires_at=row.expires_at)


def _code(row: Row[Any]) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row.code_hash,
        client_id=row.client_id,
        redirect_uri=row.redirect_uri,
        code_challenge=row.code_challenge,
        nonce=row.nonce,
        scope=row.scope,
        audience=row.audience,
        sub=row.sub,
        login_session=row.login_session,
        auth_time=row.auth_time,
        sid=row.sid,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )
