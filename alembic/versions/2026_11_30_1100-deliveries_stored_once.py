"""A delivery Meta sends again byte for byte is stored once: webhook_deliveries.body_sha256,
unique.

Revision ID: 0007
Revises: 0006
Created: 2026-11-30 11:00

Existing rows get the hash of their body; of copies stored twice before, the oldest keeps it
and the others keep NULL (nothing is deleted).
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    deliveries = sa.table(
        "webhook_deliveries",
        sa.column("id", sa.BigInteger()),
        sa.column("body", sa.LargeBinary()),
        sa.column("body_sha256", sa.String()),
    )
    seen: set[str] = set()
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(deliveries.c.id, deliveries.c.body)
            .where(deliveries.c.id > last_id)
            .order_by(deliveries.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for row_id, body in rows:
            digest = hashlib.sha256(bytes(body)).hexdigest()
            if digest not in seen:
                seen.add(digest)
                connection.execute(
                    sa.update(deliveries)
                    .where(deliveries.c.id == row_id)
                    .values(body_sha256=digest)
                )
        last_id = rows[-1][0]
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.create_unique_constraint("uq_webhook_deliveries_body_sha256", ["body_sha256"])


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("uq_webhook_deliveries_body_sha256", type_="unique")
        batch.drop_column("body_sha256")
