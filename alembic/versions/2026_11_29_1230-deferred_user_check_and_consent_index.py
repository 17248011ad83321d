"""Intake writes a conversation before its users: check conversations.user_id at commit;
index the refused profiles the fetcher revisits.

Revision ID: 0005
Revises: 0004
Created: 2026-11-29 12:30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_conversations_user_id_users"


def _foreign_key(*, deferred: bool) -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch.create_foreign_key(
            FOREIGN_KEY,
            "users",
            ["user_id"],
            ["id"],
            deferrable=True if deferred else None,
            initially="DEFERRED" if deferred else None,
        )


def upgrade() -> None:
    _foreign_key(deferred=True)
    op.create_index(
        "ix_users_consent_required",
        "users",
        ["id"],
        postgresql_where=sa.text("profile_status = 'consent_required'"),
        sqlite_where=sa.text("profile_status = 'consent_required'"),
    )


def downgrade() -> None:
    op.drop_index("ix_users_consent_required", table_name="users")
    _foreign_key(deferred=False)
