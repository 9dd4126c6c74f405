"""Registered clients: public or confidential, each with its grants, redirect URIs, scopes and
audiences; a login session remembers the audience its tokens are for.

Existing clients keep every grant they could use before (client_credentials, password,
refresh_token) and their scope, which now also bounds what users get through them. The
client `public` is registered here, once per database: it is who a request that names no
client is, as before this revision (Swagger UI, the quickstart's curl). Remove it with
`auth-service clients remove public` once every caller has a client of its own.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ALL_GRANTS = "client_credentials password refresh_token"


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:  # SQLite changes nullability by copying the table
        batch.alter_column("secret_hash", existing_type=sa.Text, nullable=True)  # NULL: a public client
        batch.alter_column("scope", existing_type=sa.Text, nullable=True)  # NULL: any scope the user holds
        batch.add_column(sa.Column("grant_types", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("redirect_uris", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("audiences", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("name", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("first_party", sa.Boolean, nullable=False, server_default=sa.false()))
    clients = sa.table(
        "clients",
        sa.column("client_id", sa.String),
        sa.column("secret_hash", sa.Text),
        sa.column("scope", sa.Text),
        sa.column("created_at", sa.BigInteger),
        sa.column("grant_types", sa.Text),
        sa.column("name", sa.Text),
        sa.column("first_party", sa.Boolean),
    )
    op.execute(clients.update().values(grant_types=_ALL_GRANTS))
    exists = op.get_bind().execute(sa.select(clients.c.client_id).where(clients.c.client_id == "public")).first()
    if exists is None:
        op.execute(
            clients.insert().values(
                client_id="public",
                secret_hash=None,
                scope=None,
                created_at=int(time.time()),
                grant_types="password refresh_token",
                name="Default public client (requests that name no client)",
                first_party=True,
            )
        )
    op.add_column("families", sa.Column("audience", sa.String(256), nullable=True))  # NULL: AUTH_AUDIENCE


def downgrade() -> None:
    with op.batch_alter_table("families") as batch:
        batch.drop_column("audience")
    op.execute("DELETE FROM clients WHERE secret_hash IS NULL")  # public clients cannot exist before 0004
    with op.batch_alter_table("clients") as batch:
        for column in ("first_party", "name", "audiences", "redirect_uris", "grant_types"):
            batch.drop_column(column)
        batch.alter_column("scope", existing_type=sa.Text, nullable=False, server_default="")
        batch.alter_column("secret_hash", existing_type=sa.Text, nullable=False)
