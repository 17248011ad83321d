"""The access token's lifecycle: the token in use, its expiry, refresh lease and 190 mark.

Revision ID: 0003
Revises: 0002
Created: 2026-11-29 11:10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.func.now() if now else None,
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "instagram_tokens",
        sa.Column("source_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        _timestamp("issued_at", nullable=False),
        _timestamp("expires_at", nullable=False),
        sa.Column("expiry_assumed", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _timestamp("refreshed_at"),
        _timestamp("refresh_claimed_until"),
        sa.Column("refresh_error", sa.Text(), nullable=True),
        _timestamp("invalid_since"),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("updated_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("source_fingerprint", name=op.f("pk_instagram_tokens")),
    )


def downgrade() -> None:
    op.drop_table("instagram_tokens")
