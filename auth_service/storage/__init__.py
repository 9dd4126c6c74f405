"""Storage: protocols per concern, and the backends that implement them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from .protocols import (
    AuthorizationCode,
    Client,
    ClientStore,
    Conflict,
    Credential,
    FamilyStore,
    LoginSession,
    RedeemOutcome,
    RefreshRecord,
    RevocationEntry,
    RevocationStore,
    Revoked,
    RotateOutcome,
    SignInStore,
    Store,
    User,
    UserStore,
)
from .schema import SchemaBehind
from .sql import SqlStore


async def open_store(url: str) -> SqlStore:
    """Open the backend a database URL names.

    SQLite (embedded) migrates its schema itself; PostgreSQL must already be at the
    newest revision (`auth-service db upgrade`), else SchemaBehind."""
    if url.startswith("sqlite"):
        from .sqlite import open_sqlite

        return await open_sqlite(url)
    if url.startswith(("postgresql", "postgres")):
        from .postgres import open_postgres

        return await open_postgres(url)
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")


def migration_engine(url: str) -> AsyncEngine:
    """An engine for `auth-service db upgrade` on either backend."""
    if url.startswith("sqlite"):
        from .sqlite import engine

        return engine(url)
    from .postgres import engine as pg_engine

    return pg_engine(url)


__all__ = [
    "AuthorizationCode",
    "Client",
    "ClientStore",
    "Conflict",
    "Credential",
    "FamilyStore",
    "LoginSession",
    "RedeemOutcome",
    "RefreshRecord",
    "RevocationEntry",
    "RevocationStore",
    "Revoked",
    "RotateOutcome",
    "SchemaBehind",
    "SignInStore",
    "SqlStore",
    "Store",
    "User",
    "UserStore",
    "migration_engine",
    "open_store",
]
