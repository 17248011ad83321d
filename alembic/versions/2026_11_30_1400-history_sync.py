"""History from the Conversations API: backfill jobs, gap checks, backfilled messages.

Revision ID: 0011
Revises: 0010
Created: 2026-11-30 14:00

- sync_jobs / sync_job_conversations: a backfill run and its conversations (resumable).
- account_sync: each account's sweep clock and lease, and its gaps found and filled.
- conversations.graph_conversation_id (Meta's thread id) and check_due_at (a webhook named a
  message the service does not have).
- messages.source may be 'backfill'.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sync_jobs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=True),
        sa.Column("list_cursor", sa.Text(), nullable=True),
        sa.Column("listed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        *(
            sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)
            for name in (
                "conversations_total",
                "conversations_done",
                "conversations_failed",
                "messages_imported",
                "placeholders_imported",
            )
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_sync_jobs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_jobs")),
    )
    op.create_index(op.f("ix_sync_jobs_account_id"), "sync_jobs", ["account_id"])
    op.create_index("ix_sync_jobs_status_id", "sync_jobs", ["status", "id"])
    op.create_table(
        "sync_job_conversations",
        sa.Column("job_id", BIG_ID, nullable=False),
        sa.Column("graph_conversation_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("updated_time", TIMESTAMP, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("messages", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')",
            name=op.f("ck_sync_job_conversations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["sync_jobs.id"],
            name=op.f("fk_sync_job_conversations_job_id_sync_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "job_id", "graph_conversation_id", name=op.f("pk_sync_job_conversations")
        ),
    )
    op.create_table(
        "account_sync",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("last_sweep_at", TIMESTAMP, nullable=True),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.Column("gaps_found", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("gaps_filled", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_sync")),
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("graph_conversation_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("check_due_at", TIMESTAMP, nullable=True))
        batch.create_index(batch.f("ix_conversations_check_due_at"), ["check_due_at"])
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(op.f("ck_messages_source"), type_="check")
        batch.create_check_constraint("source", "source IN ('webhook', 'echo', 'api', 'backfill')")


def downgrade() -> None:
    op.execute("DELETE FROM messages WHERE source = 'backfill' AND is_placeholder")
    op.execute("UPDATE messages SET source = 'webhook' WHERE source = 'backfill'")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(op.f("ck_messages_source"), type_="check")
        batch.create_check_constraint("source", "source IN ('webhook', 'echo', 'api')")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index(batch.f("ix_conversations_check_due_at"))
        batch.drop_column("check_due_at")
        batch.drop_column("graph_conversation_id")
    op.drop_table("account_sync")
    op.drop_table("sync_job_conversations")
    op.drop_index("ix_sync_jobs_status_id", table_name="sync_jobs")
    op.drop_index(op.f("ix_sync_jobs_account_id"), table_name="sync_jobs")
    op.drop_table("sync_jobs")
