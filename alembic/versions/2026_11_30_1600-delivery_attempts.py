"""`event_delivery_attempts`: every attempt of a delivery (when, status code, duration, error),
listed by `GET /api/v1/webhook-endpoints/{id}/deliveries`.

Revision ID: 0013
Revises: 0012
Created: 2026-11-30 16:00

Deliveries attempted before this revision kept only their last attempt (`last_*` columns):
that attempt becomes their one attempt row, numbered as their attempt count.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_delivery_attempts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("delivery_id", BIG_ID, nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["event_deliveries.id"],
            name=op.f("fk_event_delivery_attempts_delivery_id_event_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_event_delivery_attempts_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_delivery_attempts")),
    )
    op.create_index(
        op.f("ix_event_delivery_attempts_delivery_id"),
        "event_delivery_attempts",
        ["delivery_id"],
    )
    op.create_index(
        "ix_event_delivery_attempts_endpoint_id_id",
        "event_delivery_attempts",
        ["endpoint_id", "id"],
    )
    op.execute(
        "INSERT INTO event_delivery_attempts"
        " (delivery_id, endpoint_id, number, attempted_at, status_code, duration_ms, error)"
        " SELECT id, endpoint_id, attempts, last_attempt_at, last_status_code,"
        " COALESCE(last_duration_ms, 0), last_error"
        " FROM event_deliveries WHERE last_attempt_at IS NOT NULL AND attempts > 0"
        " ORDER BY last_attempt_at, id"
    )


def downgrade() -> None:
    # The deliveries' `last_*` columns still hold each one's last attempt.
    op.drop_table("event_delivery_attempts")
