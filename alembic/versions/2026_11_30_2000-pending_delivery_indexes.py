"""Event deliveries: index only the pending ones, in the order a claim takes them; drop the
`last_*` columns that repeated the newest attempt.

Revision ID: 0016
Revises: 0015
Created: 2026-11-30 20:00

A claim looks for due pending deliveries ordered by (next_attempt_at, id), each the oldest
pending one of its endpoint and conversation. With `(status, next_attempt_at)` PostgreSQL
read and sorted the whole backlog on every claim (89 ms a claim with a few thousand pending),
and the oldest-pending check walked the conversation's delivered history too. Both indexes
are now partial (`status = 'pending'`): the claim is an index scan that stops at its LIMIT,
the check one probe, and delivered rows leave both indexes.

`last_attempt_at`, `last_status_code`, `last_duration_ms` and `last_error` repeated the
newest row of `event_delivery_attempts` (0013), which is what `GET .../deliveries` shows;
nothing read them. Attempts are now recorded in batches, and per-row copies would cost one
UPDATE per attempt. The downgrade fills them again from the attempts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")
TIMESTAMP = sa.DateTime(timezone=True)
LAST_COLUMNS = ("last_attempt_at", "last_status_code", "last_duration_ms", "last_error")


def upgrade() -> None:
    op.drop_index("ix_event_deliveries_status_next_attempt_at", table_name="event_deliveries")
    op.drop_index("ix_event_deliveries_endpoint_id_conversation", table_name="event_deliveries")
    op.create_index(
        "ix_event_deliveries_due",
        "event_deliveries",
        ["next_attempt_at", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_event_deliveries_pending_conversation",
        "event_deliveries",
        ["endpoint_id", "conversation", "event_seq"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    with op.batch_alter_table("event_deliveries") as batch:
        for column in LAST_COLUMNS:
            batch.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table("event_deliveries") as batch:
        batch.add_column(sa.Column("last_attempt_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("last_status_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_duration_ms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    newest = " FROM event_delivery_attempts a WHERE a.delivery_id = event_deliveries.id"
    newest += " ORDER BY a.id DESC LIMIT 1)"
    op.execute(
        "UPDATE event_deliveries SET"
        " last_attempt_at = (SELECT a.attempted_at" + newest + ","
        " last_status_code = (SELECT a.status_code" + newest + ","
        " last_duration_ms = (SELECT a.duration_ms" + newest + ","
        " last_error = (SELECT a.error" + newest
    )
    op.drop_index("ix_event_deliveries_pending_conversation", table_name="event_deliveries")
    op.drop_index("ix_event_deliveries_due", table_name="event_deliveries")
    op.create_index(
        "ix_event_deliveries_endpoint_id_conversation",
        "event_deliveries",
        ["endpoint_id", "conversation", "event_seq"],
    )
    op.create_index(
        "ix_event_deliveries_status_next_attempt_at",
        "event_deliveries",
        ["status", "next_attempt_at"],
    )
