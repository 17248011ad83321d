"""Every messaging event: reactions, edits/unsends before their message, reads, referrals,
and the background profile queue.

Revision ID: 0002
Revises: 0001
Created: 2026-11-29 10:45
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("profile_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("profile_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("profile_claimed_until", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index(op.f("ix_users_profile_due_at"), "users", ["profile_due_at"])
    # Profiles nobody fetched yet are due now.
    op.execute(
        "UPDATE users SET profile_due_at = CURRENT_TIMESTAMP WHERE profile_status = 'pending'"
    )

    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("customer_read_mid", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_referral", JSON_DOCUMENT, nullable=True))
        batch.add_column(sa.Column("last_referral_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "is_placeholder", sa.Boolean(), server_default=sa.text("false"), nullable=False
            )
        )

    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(
            sa.Column("replay_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )

    op.create_table(
        "reactions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("mid", sa.Text(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("reaction", sa.String(length=64), nullable=True),
        sa.Column("emoji", sa.Text(), nullable=True),
        sa.Column("reacted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reactions")),
        sa.UniqueConstraint("mid", "user_id", name=op.f("uq_reactions_mid_user_id")),
    )


def downgrade() -> None:
    op.drop_table("reactions")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("replay_count")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("is_placeholder")
        batch.drop_column("deleted_at")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("last_referral_at")
        batch.drop_column("last_referral")
        batch.drop_column("customer_read_mid")
    op.drop_index(op.f("ix_users_profile_due_at"), table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("profile_claimed_until")
        batch.drop_column("profile_attempts")
        batch.drop_column("profile_due_at")
