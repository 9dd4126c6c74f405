"""Alembic environment: runs on the connection `schema.py` hands over (never opens its own)."""

from __future__ import annotations

from alembic import context

from auth_service.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
