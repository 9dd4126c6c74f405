"""Every storage protocol over SQLAlchemy Core, for any SQL backend: users and clients here,
refresh families and the revocation feed in `sql_sessions.py`.

Atomicity comes from the database, not from the process: each change is one transaction,
and a change that revokes (removing a client) appends its feed entries in the same one.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .protocols import Client, Conflict, RevocationEntry, User
from .sql_sessions import SessionRows, append_entry, revoke_family_in
from .sql_signin import SignInRows
from .tables import clients, families, users


def username_key(username: str) -> str:
    """The form usernames are compared in: 'Ａlice' (fullwidth) and 'ALICE' are 'alice'."""  # noqa: RUF002
    return unicodedata.normalize("NFKC", username).casefold()


_MAX_USERS_PAGE = 1000  # users per `list_users` answer, whatever the caller asks


def _new_id() -> str:
    return secrets.token_urlsafe(16)


class SqlStore(SessionRows, SignInRows):
    """Implements UserStore, ClientStore, FamilyStore, RevocationStore and SignInStore.

    `writer` runs every writing transaction; on SQLite it is a one-connection engine that
    begins IMMEDIATE, so writers queue instead of failing on a lock upgrade. `reader` may
    be the same engine.
    """

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine | None = None) -> None:
        self._writer = writer
        self._reader = reader or writer

    @property
    def engine(self) -> AsyncEngine:
        """The writing engine (for the database keystore, which shares it)."""
        return self._writer

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.connect() as conn:
            yield conn

    # -- users -------------------------------------------------------------------------

    async def add_user(self, username: str, password_hash: str, scope: str, now: int) -> User:
        user = User(id=_new_id(), username=username, password_hash=password_hash, scope=scope, password_changed_at=now)
        try:
            async with self._writer.begin() as conn:
                await conn.execute(
                    insert(users).values(
                        id=user.id,
                        username=username,
                        username_key=username_key(username),
                        password_hash=password_hash,
                        scope=scope,
                        created_at=now,
                        password_changed_at=now,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"user {username!r} exists") from exc
        return user

    async def user_by_name(self, username: str) -> User | None:
        async with self._read() as conn:
            row = (await conn.execute(select(users).where(users.c.username_key == username_key(username)))).first()
        return _user(row) if row else None

    async def user_by_id(self, sub: str) -> User | None:
        async with self._read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == sub))).first()
        return _user(row) if row else None

    async def set_password_hash(
        self, sub: str, password_hash: str, changed_at: int | None, *, replaces: str | None = None
    ) -> None:
        values: dict[str, object] = {"password_hash": password_hash}
        if changed_at is not None:
            values["password_changed_at"] = changed_at
        which = users.c.id == sub
        if replaces is not None:
            which = and_(which, users.c.password_hash == replaces)
        async with self._writer.begin() as conn:
            await conn.execute(update(users).where(which).values(**values))

    async def list_users(self, *, after: str | None = None, limit: int = 100) -> list[User]:
        # Clamped both ways: SQLite reads a negative LIMIT as no limit at all.
        query = select(users).order_by(users.c.username_key).limit(max(0, min(limit, _MAX_USERS_PAGE)))
        if after is not None:
            query = query.where(users.c.username_key > username_key(after))
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_user(row) for row in rows]

    async def set_scope(self, sub: str, scope: str) -> bool:
        async with self._writer.begin() as conn:
            changed = await conn.execute(update(users).where(users.c.id == sub).values(scope=scope))
        return changed.rowcount == 1

    async def set_profile(self, sub: str, *, name: str | None, email: str | None, email_verified: bool) -> bool:
        values = {"name": name, "email": email, "email_verified": email_verified}
        async with self._writer.begin() as conn:
            changed = await conn.execute(update(users).where(users.c.id == sub).values(**values))
        return changed.rowcount == 1

    async def set_disabled(self, sub: str, disabled_at: int | None) -> bool:
        async with self._writer.begin() as conn:
            changed = await conn.execute(update(users).where(users.c.id == sub).values(disabled_at=disabled_at))
        return changed.rowcount == 1

    async def remove_user(self, sub: str) -> bool:
        async with self._writer.begin() as conn:
            removed = await conn.execute(delete(users).where(users.c.id == sub))
        return removed.rowcount == 1

    # -- clients -----------------------------------------------------------------------

    async def add_client(self, client: Client) -> Client:
        try:
            async with self._writer.begin() as conn:
                await conn.execute(insert(clients).values(**_client_row(client)))
        except IntegrityError as exc:
            raise Conflict(f"client {client.client_id!r} exists") from exc
        return client

    async def client(self, client_id: str) -> Client | None:
        async with self._read() as conn:
            row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
        return _client(row) if row else None

    async def clients(self) -> list[Client]:
        async with self._read() as conn:
            rows = (await conn.execute(select(clients).order_by(clients.c.client_id))).all()
        return [_client(row) for row in rows]

    async def set_client_secret(self, client_id: str, secret_hash: str) -> bool:
        confidential = and_(clients.c.client_id == client_id, clients.c.secret_hash.is_not(None))
        async with self._writer.begin() as conn:
            changed = await conn.execute(update(clients).where(confidential).values(secret_hash=secret_hash))
        return changed.rowcount == 1

    async def remove_client(self, client_id: str, now: int, revocation_expires_at: int) -> list[RevocationEntry] | None:
        async with self._writer.begin() as conn:
            removed = await conn.execute(delete(clients).where(clients.c.client_id == client_id))
            if removed.rowcount != 1:
                return None
            live = and_(families.c.client_id == client_id, families.c.revoked_at.is_(None), families.c.expires_at > now)
            sids = list((await conn.execute(select(families.c.sid).where(live).order_by(families.c.sid))).scalars())
            appended = [await revoke_family_in(conn, sid, now, revocation_expires_at) for sid in sids]
            # Its client_credentials tokens have sub = client_id: a `sub` entry ends them too.
            appended.append(await append_entry(conn, "sub", client_id, now + 1, revocation_expires_at + 1, now))
        return [entry for entry in appended if entry is not None]


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        username=row.username,
        password_hash=row.password_hash,
        scope=row.scope,
        password_changed_at=row.password_changed_at,
        disabled_at=row.disabled_at,
        name=row.name,
        email=row.email,
        email_verified=bool(row.email_verified),
    )


def _client_row(client: Client) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "secret_hash": client.secret_hash,
        "scope": client.scope,
        "created_at": client.created_at,
        "grant_types": " ".join(client.grant_types),
        "redirect_uris": " ".join(client.redirect_uris),
        "audiences": " ".join(client.audiences),
        "name": client.name,
        "first_party": client.first_party,
        "post_logout_redirect_uris": " ".join(client.post_logout_redirect_uris),
    }


def _client(row: Row[Any]) -> Client:
    return Client(
        client_id=row.client_id,
        secret_hash=row.secret_hash,
        scope=row.scope,
        grant_types=tuple(row.grant_types.split()),
        redirect_uris=tuple(row.redirect_uris.split()),
        audiences=tuple(row.audiences.split()),
        name=row.name,
        first_party=bool(row.first_party),
        created_at=row.created_at,
        post_logout_redirect_uris=tuple(row.post_logout_redirect_uris.split()),
    )
