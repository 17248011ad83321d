"""SQL for `events` (the outbox): written with the change they describe, read by the feed,
the stream and the delivery dispatcher up to a safe horizon."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Session

from app.models import EVENTS_WRITER_LOCK, Event, EventDelivery, EventDeliveryAttempt

EVENTS = Event.__table__
# Held by every transaction writing events from before its `seq` is drawn until it ends (a
# trigger on `events` takes it: app/models.py); readers list its holders (pg_locks) to know
# which writers are still in flight.
WRITER_LOCK = EVENTS_WRITER_LOCK
# One statement, one snapshot: the newest committed seq, and the event writers in flight.
_OBSERVE = text(
    "SELECT (SELECT max(seq) FROM events), ARRAY("
    "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = :classid AND objid = :objid AND objsubid = 2)"
).bindparams(classid=WRITER_LOCK[0], objid=WRITER_LOCK[1])
_INSERT = insert(cast(Table, EVENTS))


def add_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert event rows (id, type, account_id, conversation, payload, created_at) in the
    session's transaction; their `seq` is drawn now (on PostgreSQL after the statement's
    trigger took the writer lock)."""
    if not rows:
        return
    session.connection().execute(_INSERT, list(rows))


def observe(session: Session) -> tuple[int, frozenset[str]]:
    """The highest committed seq (0: none) and the event writers still in flight (their
    virtual transaction ids; always none on SQLite, where commits are serial)."""
    if session.get_bind().dialect.name != "postgresql":
        return session.execute(select(func.coalesce(func.max(Event.seq), 0))).scalar_one(), (
            frozenset()
        )
    newest, writers = session.execute(_OBSERVE).one()
    return int(newest or 0), frozenset(writers or ())


_PAGE = (
    select(EVENTS)
    .where(
        EVENTS.c.seq > bindparam("after"),
        EVENTS.c.seq <= bindparam("up_to"),
        EVENTS.c.type != "ping",  # a test of one endpoint, not news
    )
    .order_by(EVENTS.c.seq)
    .limit(bindparam("limit"))
)


def page(
    session: Session,
    *,
    after: int,
    up_to: int,
    limit: int,
    types: Iterable[str] | None = None,
    account_id: str | None = None,
) -> Sequence[Row[Any]]:
    """Events with after < seq <= up_to, oldest first, optionally of these types and this
    account."""
    query = _PAGE
    if types:
        query = query.where(EVENTS.c.type.in_(list(types)))
    if account_id is not None:
        query = query.where(EVENTS.c.account_id == account_id)
    parameters = {"after": after, "up_to": up_to, "limit": limit}
    return session.connection().execute(query, parameters).all()


def oldest_seq(session: Session) -> int | None:
    """The oldest seq still kept (None: no event)."""
    return session.execute(select(func.min(Event.seq))).scalar()


def delete_older(session: Session, *, created_before: datetime, limit: int) -> int:
    """Delete up to `limit` events created before then (oldest first), and their deliveries
    to webhook endpoints with their attempts; how many events went."""
    doomed = list(
        session.scalars(
            select(Event.seq)
            .where(Event.created_at < created_before)
            .order_by(Event.seq)
            .limit(limit)
        )
    )
    if not doomed:
        return 0
    # Explicitly, not only by ON DELETE CASCADE: SQLite enforces it only where asked to.
    doomed_deliveries = select(EventDelivery.id).where(EventDelivery.event_seq.in_(doomed))
    session.execute(
        delete(EventDeliveryAttempt).where(EventDeliveryAttempt.delivery_id.in_(doomed_deliveries))
    )
    session.execute(delete(EventDelivery).where(EventDelivery.event_seq.in_(doomed)))
    result = session.execute(delete(Event).where(Event.seq.in_(doomed)))
    return int(getattr(result, "rowcount", 0) or 0)


def seq_of(session: Session, event_id: str) -> int:
    return int(session.execute(select(Event.seq).where(Event.id == event_id)).scalar_one())
