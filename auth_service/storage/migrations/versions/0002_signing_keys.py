"""Signing keys in the database, for instances that share no file system.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("activates_at", sa.BigInteger, nullable=False),
        # PKCS#8 PEM, always encrypted with AUTH_KEYS_PASSPHRASE.
        sa.Column("private_key", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
