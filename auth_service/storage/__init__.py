"""Storage: protocols per concern, and the backends that implement them."""

from __future__ import annotations

from .protocols import (
    Client,
    Conflict,
    RefreshRecord,
    RevocationEntry,
    Revoked,
    RotateOutcome,
    Store,
    User,
)
from .sql import SqlStore


async def open_store(url: str) -> SqlStore:
    """Open the backend an SQLAlchemy URL names, creating the schema when it is new."""
    if url.startswith("sqlite"):
        from .sqlite import open_sqlite

        return await open_sqlite(url)
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")


__all__ = ["Client", "Conflict", "RefreshRecord", "RevocationEntry", "Revoked", "RotateOutcome", "SqlStore",
           "Store", "User", "open_store"]
