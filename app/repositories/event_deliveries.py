"""SQL for `event_deliveries`: each event fanned out to each endpoint that wants it, claimed
with leases, attempted (each attempt a row of `event_delivery_attempts`), retried, given up."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Row,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased

from app.models import Event, EventDelivery, EventDeliveryAttempt, WebhookEndpoint
from app.repositories.base import upsert_insert

DELIVERIES = EventDelivery.__table__
EVENTS = Event.__table__
ATTEMPTS = cast(Table, EventDeliveryAttempt.__table__)
PING = "ping"


def _wanted(endpoint: WebhookEndpoint) -> list[Any]:
    """The endpoint's filters as conditions on `events`."""
    conditions: list[Any] = [EVENTS.c.type != PING]
    if endpoint.event_types:
        conditions.append(EVENTS.c.type.in_(endpoint.event_types))
    if endpoint.account_ids:
        conditions.append(EVENTS.c.account_id.in_(endpoint.account_ids))
    return conditions


def fan_out(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    after: int,
    up_to: int,
    now: datetime,
    limit: int,
) -> int:
    """Create the deliveries of the endpoint's events with after < seq <= up_to (at most
    `limit`; existing ones are kept as they are); the seq it got to.

    Two statements of one shape whatever the number of events (compiled once): the seqs
    wanted, then one INSERT … SELECT of their deliveries."""
    wanted = _wanted(endpoint)
    seqs = (
        session.execute(
            select(EVENTS.c.seq)
            .where(EVENTS.c.seq > after, EVENTS.c.seq <= up_to, *wanted)
            .order_by(EVENTS.c.seq)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not seqs:
        return up_to
    last = int(seqs[-1])
    at = bindparam("now", now, type_=DELIVERIES.c.next_attempt_at.type)
    endpoint_id = bindparam("endpoint_id", endpoint.id, type_=DELIVERIES.c.endpoint_id.type)
    conversation = func.coalesce(EVENTS.c.conversation, "")
    # Behind a pending delivery of its conversation (waiting for a retry, say) an event
    # waits as long as it does: see _hold_back.
    waiting = aliased(EventDelivery)
    behind = (
        select(waiting.next_attempt_at)
        .where(
            waiting.endpoint_id == endpoint_id,
            waiting.conversation == conversation,
            waiting.status == "pending",
        )
        .order_by(waiting.event_seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    deliveries = select(
        endpoint_id,
        EVENTS.c.seq,
        conversation,
        literal("pending"),
        literal(0),
        func.coalesce(behind, at),
        at,
    ).where(EVENTS.c.seq > after, EVENTS.c.seq <= last, *wanted)
    columns = ["endpoint_id", "event_seq", "conversation", "status", "attempts"]
    insert = upsert_insert(session, DELIVERIES).from_select(
        [*columns, "next_attempt_at", "created_at"], deliveries
    )
    session.execute(
        insert.on_conflict_do_nothing(
            index_elements=[DELIVERIES.c.endpoint_id, DELIVERIES.c.event_seq]
        )
    )
    return last if len(seqs) == limit else up_to


def restart(session: Session, *, endpoint_id: str, since_seq: int, now: datetime) -> int:
    """Deliver the endpoint's events from `since_seq` again: their deliveries pending anew;
    how many."""
    result: Any = session.execute(
        update(EventDelivery)
        .where(EventDelivery.endpoint_id == endpoint_id, EventDelivery.event_seq >= since_seq)
        .values(status="pending", attempts=0, next_attempt_at=now, claimed_until=None)
    )
    return int(result.rowcount or 0)


def add_one(session: Session, *, endpoint_id: str, event_seq: int, now: datetime) -> None:
    session.add(
        EventDelivery(
            endpoint_id=endpoint_id,
            event_seq=event_seq,
            conversation="",
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    session.flush()


def _due() -> Any:
    earlier = aliased(EventDelivery)
    now = bindparam("now", type_=EventDelivery.__table__.c.next_attempt_at.type)
    return and_(
        EventDelivery.status == "pending",
        EventDelivery.next_attempt_at <= now,
        (EventDelivery.claimed_until.is_(None)) | (EventDelivery.claimed_until < now),
        exists().where(
            WebhookEndpoint.id == EventDelivery.endpoint_id, WebhookEndpoint.enabled.is_(True)
        ),
        # Per endpoint and conversation, strictly in seq order: the oldest pending goes first.
        ~exists().where(
            earlier.endpoint_id == EventDelivery.endpoint_id,
            earlier.conversation == EventDelivery.conversation,
            earlier.status == "pending",
            earlier.event_seq < EventDelivery.event_seq,
        ),
    )


# Built once (a claim runs many times a second while a backlog is worked through).
DUE = (
    select(EventDelivery.id)
    .where(_due())
    .order_by(EventDelivery.next_attempt_at, EventDelivery.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)


def walk_due_in_order(session: Session) -> None:
    """On PostgreSQL, turn sorting off for the rest of this transaction (SET LOCAL), so the
    planner reads DUE from its index in order instead of sorting every due delivery."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.set_config("enable_sort", "off", True)))


def claim(session: Session, *, now: datetime, lease_until: datetime, limit: int) -> list[int]:
    """Lease up to `limit` due deliveries; their ids. On PostgreSQL rows another process is
    claiming are skipped (FOR UPDATE SKIP LOCKED); the UPDATE's own condition keeps two
    processes from leasing one row on SQLite too. Nothing due: one SELECT, no write.

    The due deliveries are read in the due index's order, stopping at `limit`. PostgreSQL
    would rather read every due delivery and sort them whenever its statistics think few
    are pending (after a quiet spell, exactly when a backlog builds): with 5,000 pending that
    took 38 ms a claim instead of 1 ms, growing with the backlog."""
    walk_due_in_order(session)
    due = list(session.scalars(DUE, {"now": now, "limit": limit}))
    if not due:
        return []
    claimed = session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.id.in_(due),
            (EventDelivery.claimed_until.is_(None)) | (EventDelivery.claimed_until < now),
        )
        .values(claimed_until=lease_until)
        .returning(EventDelivery.id)
    )
    return [row_id for (row_id,) in claimed.all()]


def to_send(session: Session, ids: Sequence[int]) -> Sequence[Row[Any]]:
    """The claimed deliveries with their event and endpoint: what an attempt needs."""
    if not ids:
        return []
    query = (
        select(
            EventDelivery.id.label("delivery_id"),
            EventDelivery.attempts,
            EventDelivery.endpoint_id,
            EventDelivery.claimed_until,
            EVENTS,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEndpoint.previous_secret,
            WebhookEndpoint.previous_secret_until,
            WebhookEndpoint.failing_since,
        )
        .join(EVENTS, EVENTS.c.seq == EventDelivery.event_seq)
        .join(WebhookEndpoint, WebhookEndpoint.id == EventDelivery.endpoint_id)
        .where(EventDelivery.id.in_(list(ids)))
        .order_by(EventDelivery.id)
    )
    return session.execute(query).all()


def _hold_back(
    session: Session, endpoint_id: str, conversation: str, *, after: int, until: datetime
) -> None:
    """The conversation's later pending deliveries wait (at least) until its head's retry:
    they could not go before it anyway, and a claim then never walks past them (an endpoint
    that is down would otherwise leave every claim reading its whole backlog)."""
    session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.endpoint_id == endpoint_id,
            EventDelivery.conversation == conversation,
            EventDelivery.status == "pending",
            EventDelivery.event_seq > after,
            EventDelivery.next_attempt_at < until,
        )
        .values(next_attempt_at=until)
    )


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What came of one attempt: `succeeded`, `failed` (given up) or `pending` again at
    `next_attempt_at`."""

    delivery_id: int
    endpoint_id: str
    number: int  # the attempt's number when it was claimed
    lease_until: datetime | None  # the lease it was made under
    status: str
    next_attempt_at: datetime | None
    status_code: int | None
    duration_ms: int
    error: str | None


def record_attempts(
    session: Session, records: Sequence[AttemptRecord], *, attempted_at: datetime
) -> int:
    """Record finished attempts: each delivery's new state (its lease released) and a row in
    `event_delivery_attempts`; how many rows were written. A delivery deleted meanwhile has
    nothing to record; one no longer under the attempt's lease (replayed meanwhile, or its
    lease expired and another process claimed it) keeps its new state, and gets only the
    attempt's row.

    One UPDATE per (status, next attempt) among them: the successes of a batch share one,
    a retry has its own jittered time. Then one INSERT of every attempt's row."""
    groups: dict[tuple[str, datetime | None], list[tuple[int, datetime | None]]]
    groups = defaultdict(list)
    for record in records:
        groups[record.status, record.next_attempt_at].append(
            (record.delivery_id, record.lease_until)
        )
    numbered: dict[int, tuple[str, int]] = {}
    for (status, next_attempt_at), leased in groups.items():
        values: dict[str, Any] = {
            "status": status,
            "attempts": EventDelivery.attempts + 1,
            "claimed_until": None,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if status == "succeeded":
            values["delivered_at"] = attempted_at
        updated = session.execute(
            update(EventDelivery)
            .where(tuple_(EventDelivery.id, EventDelivery.claimed_until).in_(leased))
            .values(values)
            .returning(
                EventDelivery.id,
                EventDelivery.endpoint_id,
                EventDelivery.attempts,
                EventDelivery.conversation,
                EventDelivery.event_seq,
            )
        ).all()
        numbered.update((row[0], (row[1], row[2])) for row in updated)
        if status == "pending" and next_attempt_at is not None:
            for _, endpoint_id, _, conversation, seq in updated:
                _hold_back(session, endpoint_id, conversation, after=seq, until=next_attempt_at)
    unleased = [record.delivery_id for record in records if record.delivery_id not in numbered]
    if unleased:
        kept = set(session.scalars(select(EventDelivery.id).where(EventDelivery.id.in_(unleased))))
        numbered.update(
            (record.delivery_id, (record.endpoint_id, record.number))
            for record in records
            if record.delivery_id in kept
        )
    rows = [
        {
            "delivery_id": record.delivery_id,
            "endpoint_id": numbered[record.delivery_id][0],
            "number": numbered[record.delivery_id][1],
            "attempted_at": attempted_at,
            "status_code": record.status_code,
            "duration_ms": record.duration_ms,
            "error": record.error,
        }
        for record in records
        if record.delivery_id in numbered
    ]
    if rows:  # the table's Core INSERT: one statement, not the ORM's bulk insert
        session.execute(insert(ATTEMPTS), rows)
    return len(rows)


def attempts_of_endpoint(session: Session, *, endpoint_id: str, limit: int) -> Sequence[Row[Any]]:
    """The endpoint's latest attempts, newest first, each with its delivery and event."""
    query = (
        select(
            EventDeliveryAttempt,
            EventDelivery,
            EVENTS.c.id.label("event_id"),
            EVENTS.c.type.label("event_type"),
        )
        .join(EventDelivery, EventDelivery.id == EventDeliveryAttempt.delivery_id)
        .join(EVENTS, EVENTS.c.seq == EventDelivery.event_seq)
        .where(EventDeliveryAttempt.endpoint_id == endpoint_id)
        .order_by(EventDeliveryAttempt.id.desc())
        .limit(limit)
    )
    return session.execute(query).all()


def backlog(session: Session) -> dict[str, int]:
    """Per endpoint, what is still to deliver: its pending deliveries (due or waiting for a
    retry), and for an enabled endpoint the events it wants that are not fanned out to it yet
    (while a backlog is worked through, new events are fanned out only as it runs low)."""
    query = (
        select(EventDelivery.endpoint_id, func.count())
        .where(EventDelivery.status == "pending")
        .group_by(EventDelivery.endpoint_id)
    )
    waiting = {endpoint_id: int(count) for endpoint_id, count in session.execute(query).all()}
    enabled = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True)))
    for endpoint in enabled:
        not_fanned_out = session.scalar(
            select(func.count())
            .select_from(EVENTS)
            .where(EVENTS.c.seq > endpoint.dispatched_seq, *_wanted(endpoint))
        )
        if not_fanned_out:
            waiting[endpoint.id] = waiting.get(endpoint.id, 0) + int(not_fanned_out)
    return waiting


def pending_from(session: Session, *, endpoint_id: str, since_seq: int) -> int:
    """How many of the endpoint's deliveries from `since_seq` on are pending."""
    query = select(func.count()).where(
        EventDelivery.endpoint_id == endpoint_id,
        EventDelivery.event_seq >= since_seq,
        EventDelivery.status == "pending",
    )
    return int(session.execute(query).scalar_one())
