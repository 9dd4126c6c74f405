"""Schema migrations (Alembic), applied by `auth-service db upgrade` and checked at start-up.

Both backends share one migration history. PostgreSQL runs each upgrade in one
transaction (transactional DDL), so a failed upgrade leaves the schema as it was.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaBehind(Exception):
    """The database's schema is older (or newer) than this code; said plainly at start-up."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def upgrade(engine: AsyncEngine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; (revision before, revision after)."""
    before = await current(engine)
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
    return before, head()


async def check(engine: AsyncEngine) -> None:
    found, wanted = await current(engine), head()
    if found != wanted:
        raise SchemaBehind(
            f"database schema is at revision {found or 'none'}, this code needs {wanted}: run `auth-service db upgrade`"
        )
