"""The outbox's writer lock taken by PostgreSQL itself: a BEFORE INSERT statement trigger on
`events` takes the shared advisory lock the safe horizon watches (app/services/events/
horizon.py), before the statement draws any `seq`.

Revision ID: 0015
Revises: 0014
Created: 2026-11-30 17:00

Until now every writer sent `SELECT pg_advisory_xact_lock_shared(...)` before its INSERT: a
round trip of its own for each transaction writing events, and a rule any new writer had to
remember. SQLite needs no lock (its commits are serial): nothing changes there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ("inst", "evts") as 32-bit integers: app/repositories/events.py WRITER_LOCK.
CLASSID, OBJID = 0x696E7374, 0x65767473


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION events_take_writer_lock() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_advisory_xact_lock_shared({CLASSID}, {OBJID}); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER events_writer_lock BEFORE INSERT ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION events_take_writer_lock()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER events_writer_lock ON events")
    op.execute("DROP FUNCTION events_take_writer_lock()")
