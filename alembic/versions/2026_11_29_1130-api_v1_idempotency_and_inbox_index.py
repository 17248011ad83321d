"""The /api/v1 API: idempotent sends, and the inbox's index.

Revision ID: 0004
Revises: 0003
Created: 2026-11-29 11:30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        # sha256 of the request an Idempotency-Key was first used with.
        batch.add_column(sa.Column("idempotency_fingerprint", sa.String(length=64), nullable=True))
    # The inbox lists conversations newest activity first, a page at a time.
    op.create_index(
        "ix_conversations_last_message_at_id", "conversations", ["last_message_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_last_message_at_id", table_name="conversations")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("idempotency_fingerprint")
