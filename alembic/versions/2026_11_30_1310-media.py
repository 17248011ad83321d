"""Media: every attachment of every message gets a row (its stable id, its CDN URL, and where
its bytes are kept when the operator archives media).

Revision ID: 0009
Revises: 0008
Created: 2026-11-30 13:10

Messages stored before this revision get their rows too (state `remote`: the URL only), so
every attachment has an id whatever its age.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
STATES = ("remote", "pending", "stored", "too_large", "unsupported", "expired", "failed")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "message_id",
            BigId,
            sa.ForeignKey("messages.id", name="fk_media_message_id_messages", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("storage_key", sa.String(length=128), nullable=True),
        sa.Column("content_type", sa.String(length=128), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("due_at", Timestamp, nullable=True),
        sa.Column("claimed_until", Timestamp, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("stored_at", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", Timestamp, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_media"),
        sa.UniqueConstraint("message_id", "position", name="uq_media_message_id_position"),
        sa.CheckConstraint(f"state IN {STATES!r}", name="ck_media_state"),
    )
    op.create_index(
        "ix_media_pending_due_at",
        "media",
        ["due_at"],
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_media_storage_key", "media", ["storage_key"])
    op.create_index(
        "ix_media_stored_at",
        "media",
        ["stored_at"],
        postgresql_where=sa.text("storage_key IS NOT NULL"),
        sqlite_where=sa.text("storage_key IS NOT NULL"),
    )
    _rows_for_stored_messages()


def _rows_for_stored_messages() -> None:
    """A `remote` row for each attachment of the messages already stored."""
    connection = op.get_bind()
    messages = sa.table(
        "messages",
        sa.column("id", sa.BigInteger()),
        sa.column("attachments", sa.JSON()),
        sa.column("is_deleted", sa.Boolean()),
    )
    media = sa.table(
        "media",
        sa.column("message_id", sa.BigInteger()),
        sa.column("position", sa.Integer()),
        sa.column("type", sa.String()),
        sa.column("source_url", sa.Text()),
        sa.column("state", sa.String()),
        sa.column("created_at", Timestamp),
        sa.column("updated_at", Timestamp),
    )
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(messages.c.id, messages.c.attachments)
            .where(
                messages.c.id > last_id,
                messages.c.attachments.is_not(None),
                messages.c.is_deleted.is_(False),
            )
            .order_by(messages.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        values = [
            {
                "message_id": message_id,
                "position": position,
                "type": _text(attachment.get("type"))[:64] or "unknown",
                "source_url": _url_of(attachment),
                "state": "remote",
                "created_at": now,
                "updated_at": now,
            }
            for message_id, attachments in rows
            for position, attachment in enumerate(attachments or [])
            if isinstance(attachment, dict)
        ]
        if values:
            connection.execute(sa.insert(media), values)
        last_id = rows[-1][0]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _url_of(attachment: dict[str, Any]) -> str | None:
    # The same rule as app/services/media/attachments.py (a migration keeps its own copy).
    payload = attachment.get("payload")
    url = payload.get("url") if isinstance(payload, dict) else None
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def downgrade() -> None:
    op.drop_index("ix_media_stored_at", table_name="media")
    op.drop_index("ix_media_storage_key", table_name="media")
    op.drop_index("ix_media_pending_due_at", table_name="media")
    op.drop_table("media")
