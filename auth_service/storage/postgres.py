"""The scale-out backend: PostgreSQL through asyncpg. The schema is never changed at
start-up: `auth-service db upgrade` migrates, the service only checks."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .schema import check
from .sql import SqlStore


def async_url(url: str) -> str:
    """`postgresql://` (as users write it) -> the asyncpg dialect SQLAlchemy needs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def engine(url: str) -> AsyncEngine:
    # hide_parameters: database errors would otherwise quote bound values (hashes) into logs.
    return create_async_engine(async_url(url), pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)


async def open_postgres(url: str) -> SqlStore:
    writer = engine(url)
    try:
        await check(writer)
    except BaseException:
        await writer.dispose()
        raise
    return SqlStore(writer=writer)
