"""Initial schema: users, conversations, messages, webhook_deliveries.

Revision ID: 0001
Revises:
Created: 2026-11-29 10:16

Types are spelled out here rather than imported from app.models, so this migration keeps
meaning the same thing when the models change. Timestamps are timestamptz on PostgreSQL;
JSON columns are JSONB there and JSON text on SQLite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.func.now() if now else None,
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("profile_pic", sa.Text(), nullable=True),
        sa.Column("follower_count", sa.Integer(), nullable=True),
        sa.Column("is_user_follow_business", sa.Boolean(), nullable=True),
        sa.Column("is_business_follow_user", sa.Boolean(), nullable=True),
        sa.Column("is_verified_user", sa.Boolean(), nullable=True),
        sa.Column("profile_status", sa.String(length=32), server_default="pending", nullable=False),
        _timestamp("fetched_at"),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("updated_at", nullable=False, now=True),
        sa.CheckConstraint(
            "profile_status IN ('pending', 'ok', 'consent_required', 'unavailable')",
            name=op.f("ck_users_profile_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )

    op.create_table(
        "conversations",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        _timestamp("last_message_at"),
        _timestamp("last_inbound_at"),
        _timestamp("customer_read_at"),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("updated_at", nullable=False, now=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_conversations_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint(
            "account_id", "user_id", name=op.f("uq_conversations_account_id_user_id")
        ),
    )
    op.create_index(op.f("ix_conversations_user_id"), "conversations", ["user_id"])

    op.create_table(
        "messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("mid", sa.Text(), nullable=True),
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("sender_id", sa.String(length=64), nullable=False),
        sa.Column("recipient_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("attachments", JSON_DOCUMENT, nullable=True),
        sa.Column("reply_to", JSON_DOCUMENT, nullable=True),
        sa.Column("quick_reply_payload", sa.Text(), nullable=True),
        sa.Column("postback_payload", sa.Text(), nullable=True),
        sa.Column("referral", JSON_DOCUMENT, nullable=True),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_unsupported", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("edit_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _timestamp("edited_at"),
        _timestamp("sent_at", nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("error", JSON_DOCUMENT, nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_messages_direction")
        ),
        sa.CheckConstraint("source IN ('webhook', 'echo', 'api')", name=op.f("ck_messages_source")),
        sa.CheckConstraint(
            "status IS NULL OR status IN ('pending', 'sent', 'failed')",
            name=op.f("ck_messages_status"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("mid", name=op.f("uq_messages_mid")),
    )
    # History reads walk this index backwards from the newest message.
    op.create_index(
        "ix_messages_conversation_id_sent_at", "messages", ["conversation_id", "sent_at", "id"]
    )
    op.create_index(
        "ix_messages_idempotency_key",
        "messages",
        ["idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BIG_ID, nullable=False),
        _timestamp("received_at", nullable=False, now=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("signature_valid", sa.Boolean(), nullable=False),
        sa.Column("event_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("applied_at"),
        sa.CheckConstraint(
            "status IN ('applied', 'failed')", name=op.f("ck_webhook_deliveries_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_status_received_at", "webhook_deliveries", ["status", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_status_received_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_messages_idempotency_key", table_name="messages")
    op.drop_index("ix_messages_conversation_id_sent_at", table_name="messages")
    op.drop_table("messages")
    op.drop_index(op.f("ix_conversations_user_id"), table_name="conversations")
    op.drop_table("conversations")
    op.drop_table("users")
