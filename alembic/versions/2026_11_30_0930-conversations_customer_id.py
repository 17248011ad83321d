"""One name per concept: a conversation's customer is `customer_id` (it was `user_id`).

Revision ID: 0006
Revises: 0005
Created: 2026-11-30 09:30

The column, its foreign key (still checked at commit), its unique constraint with account_id
and its index are renamed together, so the names keep following the naming convention.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rename(old: str, new: str) -> None:
    op.drop_index(f"ix_conversations_{old}", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_constraint(f"fk_conversations_{old}_users", type_="foreignkey")
        batch.drop_constraint(f"uq_conversations_account_id_{old}", type_="unique")
        batch.alter_column(old, new_column_name=new)
    with op.batch_alter_table("conversations") as batch:
        batch.create_foreign_key(
            f"fk_conversations_{new}_users",
            "users",
            [new],
            ["id"],
            deferrable=True,
            initially="DEFERRED",
        )
        batch.create_unique_constraint(f"uq_conversations_account_id_{new}", ["account_id", new])
    op.create_index(f"ix_conversations_{new}", "conversations", [new])


def upgrade() -> None:
    _rename("user_id", "customer_id")


def downgrade() -> None:
    _rename("customer_id", "user_id")
