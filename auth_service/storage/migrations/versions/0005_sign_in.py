"""Sign-in for browsers and apps: login sessions, authorization codes, consents, OpenID claims.

The issuer's login session (a browser signed in at the hosted page) is a row of
`login_sessions`; the refresh families its clients' code exchanges start name it, so ending
it revokes them all. Codes are stored by hash and used once. Users gain the OpenID Connect
claims `name`, `email` and `email_verified`; clients gain the URIs RP-initiated logout may
return to.

The password grant becomes opt-in: a new database (no user yet) no longer keeps the default
client `public` that revision 0004 registered for it, so no client has the grant until an
operator registers one with `--grant password`. A database in use keeps `public` as it was:
its callers go on working, and the issuer's start-up log says how to remove it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("name", sa.Text, nullable=True))
    op.add_column("users", sa.Column("email", sa.String(320), nullable=True))
    op.add_column("users", sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("clients", sa.Column("post_logout_redirect_uris", sa.Text, nullable=False, server_default=""))
    op.add_column("families", sa.Column("login_session", sa.String(64), nullable=True))
    op.create_index("ix_families_login_session", "families", ["login_session"])
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("cookie_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("sub", sa.String(128), nullable=False, index=True),
        sa.Column("auth_time", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("nonce", sa.Text, nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("audience", sa.String(256), nullable=False),
        sa.Column("sub", sa.String(128), nullable=False),
        sa.Column("login_session", sa.String(64), nullable=False),
        sa.Column("auth_time", sa.BigInteger, nullable=False),
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "consents",
        sa.Column("sub", sa.String(128), primary_key=True),
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("granted_at", sa.BigInteger, nullable=False),
    )
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0:
        op.execute(sa.text("DELETE FROM clients WHERE client_id = 'public' AND secret_hash IS NULL"))


def downgrade() -> None:
    op.drop_table("consents")
    op.drop_table("authorization_codes")
    op.drop_table("login_sessions")
    op.drop_index("ix_families_login_session", "families")
    with op.batch_alter_table("families") as batch:
        batch.drop_column("login_session")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("post_logout_redirect_uris")
    with op.batch_alter_table("users") as batch:
        for column in ("email_verified", "email", "name"):
            batch.drop_column(column)
