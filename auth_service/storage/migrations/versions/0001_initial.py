"""The initial schema: users, clients, refresh families and tokens, the revocation feed.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("username_key", sa.String(256), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("password_changed_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "families",
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("sub", sa.String(128), nullable=False, index=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("sid", sa.String(64), sa.ForeignKey("families.sid", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "revocations",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("before", sa.BigInteger, nullable=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_revocations_kind_value", "revocations", ["kind", "value"])
    op.create_index("ix_revocations_expires_at", "revocations", ["expires_at"])
    feed = op.create_table(
        "feed",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("feed_id", sa.String(64), nullable=False),
        sa.Column("head", sa.BigInteger, nullable=False),
    )
    # The feed's id names this database's feed for good: replicas resync when it changes.
    op.bulk_insert(feed, [{"id": 1, "feed_id": secrets.token_urlsafe(16), "head": 0}])


def downgrade() -> None:
    for table in ("feed", "revocations", "refresh_tokens", "families", "clients", "users"):
        op.drop_table(table)
