"""Refresh families and the revocation feed over SQLAlchemy Core: `SqlStore`'s half for sessions.

A refresh token is retired by a conditional UPDATE (`used_at IS NULL`), so of several
callers, on one instance or many, exactly one sees a row change. Feed entries take their
seq from the `feed` row incremented in the same transaction, so seq numbers are
consecutive and in commit order.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .protocols import Credential, RefreshRecord, RevocationEntry, Revoked, RotateOutcome
from .tables import families, feed, login_sessions, refresh_tokens, revocations, users


class SessionRows:
    """FamilyStore and RevocationStore; mixed into `SqlStore`, which provides the engines."""

    _writer: AsyncEngine  # SqlStore's engines: every write, and (through _read) every read
    _read: Callable[[], AbstractAsyncContextManager[AsyncConnection]]

    # -- refresh families --------------------------------------------------------------

    async def start_family(self, record: RefreshRecord, checked: Credential) -> bool:
        async with self._writer.begin() as conn:
            if not await login_stands(conn, record.sub, checked):
                return False
            await insert_family(conn, record)
        return True

    async def refresh_record(self, jti: str) -> RefreshRecord | None:
        async with self._read() as conn:
            return await _refresh_record(conn, jti)

    async def rotate(
        self, old_jti: str, new: RefreshRecord, now: int, revocation_expires_at: int, *, grace: int = 0
    ) -> RotateOutcome:
        async with self._writer.begin() as conn:
            old = await _refresh_record(conn, old_jti)
            if old is None:
                return RotateOutcome.UNKNOWN
            if old.family_revoked_at is not None:
                return RotateOutcome.REVOKED
            if old.expires_at <= now:
                return RotateOutcome.EXPIRED
            if await _subject_revoked_since(conn, old):
                await revoke_family_in(conn, old.sid, now, revocation_expires_at)
                return RotateOutcome.REVOKED
            retired = await conn.execute(
                update(refresh_tokens)
                .where(and_(refresh_tokens.c.jti == old_jti, refresh_tokens.c.used_at.is_(None)))
                .values(used_at=now)
            )
            if retired.rowcount != 1:
                used_at = (
                    await conn.execute(select(refresh_tokens.c.used_at).where(refresh_tokens.c.jti == old_jti))
                ).scalar()
                if grace > 0 and used_at is not None and now - used_at < grace:
                    return RotateOutcome.JUST_RETIRED  # a second tab, a retry: refused, the session stands
                await revoke_family_in(conn, old.sid, now, revocation_expires_at)
                return RotateOutcome.REUSED
            await _insert_refresh_token(conn, new, sid=old.sid)
            # Same lifetime for every token of a family: the newest expires last.
            await conn.execute(update(families).where(families.c.sid == old.sid).values(expires_at=new.expires_at))
            return RotateOutcome.ROTATED

    async def refresh_times(self, sid: str, since: int) -> list[int]:
        async with self._read() as conn:
            return list(
                (
                    await conn.execute(
                        select(refresh_tokens.c.issued_at)
                        .where(and_(refresh_tokens.c.sid == sid, refresh_tokens.c.issued_at > since))
                        .order_by(refresh_tokens.c.issued_at)
                    )
                ).scalars()
            )

    async def revoke_family(self, sid: str, now: int, revocation_expires_at: int) -> Revoked:
        async with self._writer.begin() as conn:
            return Revoked(await revoke_family_in(conn, sid, now, revocation_expires_at))

    async def revoke_subject(self, sub: str, now: int, before: int, revocation_expires_at: int) -> Revoked:
        async with self._writer.begin() as conn:
            await lock_user(conn, sub)  # a login storing its family now waits, or is seen below
            await conn.execute(
                update(families)
                .where(and_(families.c.sub == sub, families.c.revoked_at.is_(None)))
                .values(revoked_at=now)
            )
            # Its browser login sessions end too: outliving the entry, they would sign in again.
            await conn.execute(
                update(login_sessions)
                .where(and_(login_sessions.c.sub == sub, login_sessions.c.ended_at.is_(None)))
                .values(ended_at=now)
            )
            entry = await append_entry(conn, "sub", sub, before, revocation_expires_at, now)
        return Revoked(entry)

    async def prune_families(self, now: int) -> int:
        async with self._writer.begin() as conn:
            tokens = await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at <= now))
            fams = await conn.execute(delete(families).where(families.c.expires_at <= now))
        return tokens.rowcount + fams.rowcount

    # -- revocation feed ---------------------------------------------------------------

    async def revoke_jti(self, jti: str, expires_at: int, now: int) -> RevocationEntry:
        async with self._writer.begin() as conn:
            await _lock_feed(conn)  # two instances revoking one jti: the second sees the first's entry
            existing = await _live_entry(conn, "jti", jti, now)
            return existing or await append_entry(conn, "jti", jti, None, expires_at, now)

    async def feed_head(self) -> tuple[str, int]:
        async with self._read() as conn:
            row = (await conn.execute(select(feed.c.feed_id, feed.c.head).where(feed.c.id == 1))).one()
        return row.feed_id, row.head

    async def entries_after(self, after: int, limit: int | None = None) -> list[RevocationEntry]:
        query = select(revocations).where(revocations.c.seq > after).order_by(revocations.c.seq)
        if limit is not None:
            query = query.limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_entry(row) for row in rows]

    async def prune_revocations(self, now: int) -> int:
        async with self._writer.begin() as conn:
            result = await conn.execute(delete(revocations).where(revocations.c.expires_at <= now))
        return result.rowcount

    async def is_revoked(self, *, jti: str, sid: str | None, sub: str, iat: int, now: int) -> bool:
        match = or_(
            and_(revocations.c.kind == "jti", revocations.c.value == jti),
            and_(revocations.c.kind == "sub", revocations.c.value == sub, revocations.c.before > iat),
        )
        if sid is not None:
            match = or_(match, and_(revocations.c.kind == "sid", revocations.c.value == sid))
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(revocations.c.seq).where(and_(revocations.c.expires_at > now, match)).limit(1)
                )
            ).first()
        return row is not None

    async def revoked_before(self, sub: str) -> int | None:
        query = select(func.max(revocations.c.before)).where(
            and_(revocations.c.kind == "sub", revocations.c.value == sub)
        )
        async with self._read() as conn:
            before = (await conn.execute(query)).scalar()
        return None if before is None else int(before)

    async def count_revocations(self, now: int) -> int:
        async with self._read() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).select_from(revocations).where(revocations.c.expires_at > now)
                    )
                ).scalar_one()
            )


async def _refresh_record(conn: AsyncConnection, jti: str) -> RefreshRecord | None:
    row = (
        await conn.execute(
            select(
                refresh_tokens,
                families.c.sub,
                families.c.client_id,
                families.c.revoked_at,
                families.c.created_at.label("session_started_at"),
                families.c.audience,
                families.c.login_session,
            )
            .join(families, families.c.sid == refresh_tokens.c.sid)
            .where(refresh_tokens.c.jti == jti)
        )
    ).first()
    if row is None:
        return None
    return RefreshRecord(
        jti=row.jti,
        sid=row.sid,
        sub=row.sub,
        client_id=row.client_id,
        scope=row.scope,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        family_revoked_at=row.revoked_at,
        audience=row.audience,
        login_session=row.login_session,
        session_started_at=row.session_started_at,
    )


async def lock_user(conn: AsyncConnection, sub: str) -> Row[Any] | None:
    """The user's row, locked until the transaction ends (PostgreSQL; SQLite's writer is
    serial already): logins, password changes, code exchanges and subject revocations of one
    user queue."""
    columns = (users.c.password_hash, users.c.disabled_at, users.c.password_changed_at)
    return (await conn.execute(select(*columns).where(users.c.id == sub).with_for_update())).first()


async def insert_family(conn: AsyncConnection, record: RefreshRecord) -> None:
    """A new family and its first refresh token (a new family begins at its first token's issued_at)."""
    await conn.execute(
        insert(families).values(
            sid=record.sid,
            sub=record.sub,
            client_id=record.client_id,
            created_at=record.issued_at,
            expires_at=record.expires_at,
            revoked_at=None,
            audience=record.audience,
            login_session=record.login_session,
        )
    )
    await _insert_refresh_token(conn, record, sid=record.sid)


async def _insert_refresh_token(conn: AsyncConnection, record: RefreshRecord, *, sid: str) -> None:
    await conn.execute(
        insert(refresh_tokens).values(
            jti=record.jti,
            sid=sid,
            scope=record.scope,
            issued_at=record.issued_at,
            expires_at=record.expires_at,
            used_at=None,
        )
    )


async def login_stands(conn: AsyncConnection, sub: str, checked: Credential) -> bool:
    user = await lock_user(conn, sub)
    if user is None or user.disabled_at is not None or user.password_hash != checked.password_hash:
        return False
    newer = (
        await conn.execute(
            select(revocations.c.seq)
            .where(and_(revocations.c.kind == "sub", revocations.c.value == sub, revocations.c.seq > checked.feed_head))
            .limit(1)
        )
    ).first()
    return newer is None


async def _subject_revoked_since(conn: AsyncConnection, record: RefreshRecord) -> bool:
    """Whether a `sub` entry revokes what its subject had before this family began."""
    started = record.session_started_at or record.issued_at
    row = (
        await conn.execute(
            select(revocations.c.seq)
            .where(and_(revocations.c.kind == "sub", revocations.c.value == record.sub, revocations.c.before > started))
            .limit(1)
        )
    ).first()
    return row is not None


async def revoke_family_in(conn: AsyncConnection, sid: str, now: int, expires_at: int) -> RevocationEntry | None:
    changed = await conn.execute(
        update(families).where(and_(families.c.sid == sid, families.c.revoked_at.is_(None))).values(revoked_at=now)
    )
    if changed.rowcount == 0 and await _live_entry(conn, "sid", sid, now) is not None:
        return None
    return await append_entry(conn, "sid", sid, None, expires_at, now)


async def _lock_feed(conn: AsyncConnection) -> None:
    """Serialise feed writers (PostgreSQL row lock; SQLite's writer is serial already)."""
    await conn.execute(select(feed.c.head).where(feed.c.id == 1).with_for_update())


async def _live_entry(conn: AsyncConnection, kind: str, value: str, now: int) -> RevocationEntry | None:
    row = (
        await conn.execute(
            select(revocations).where(
                and_(revocations.c.kind == kind, revocations.c.value == value, revocations.c.expires_at > now)
            )
        )
    ).first()
    return _entry(row) if row else None


async def append_entry(
    conn: AsyncConnection, kind: str, value: str, before: int | None, expires_at: int, now: int
) -> RevocationEntry:
    seq = (
        await conn.execute(update(feed).where(feed.c.id == 1).values(head=feed.c.head + 1).returning(feed.c.head))
    ).scalar_one()
    await conn.execute(
        insert(revocations).values(
            seq=seq, kind=kind, value=value, before=before, expires_at=expires_at, created_at=now
        )
    )
    return RevocationEntry(seq=seq, kind=kind, value=value, before=before, expires_at=expires_at)


def _entry(row: Row[Any]) -> RevocationEntry:
    return RevocationEntry(
        seq=row.seq,
        kind=row.kind,
        value=row.value,
        before=row.before,
        expires_at=row.expires_at,
    )
