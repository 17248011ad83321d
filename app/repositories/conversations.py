"""SQL for `conversations`: one per (business account, customer)."""

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, select, tuple_
from sqlalchemy.orm import Session

from app.models import Conversation, User, utcnow
from app.repositories.base import Position, later_of, upsert_insert


def upsert(
    session: Session,
    *,
    account_id: str,
    user_id: str,
    message_at: datetime | None = None,
    inbound_at: datetime | None = None,
    read_at: datetime | None = None,
    read_mid: str | None = None,
    referral: dict[str, Any] | None = None,
    referral_at: datetime | None = None,
) -> int:
    """Create the conversation if needed and move its clocks forward; return its id.

    Every clock only moves forward, and what travels with a clock (the read mid, the
    referral) changes only with it, so events applied in any order end in the same state.
    """
    table = Conversation.__table__
    now = utcnow()
    stmt = upsert_insert(session, table).values(
        account_id=account_id,
        user_id=user_id,
        last_message_at=message_at,
        last_inbound_at=inbound_at,
        customer_read_at=read_at,
        customer_read_mid=read_mid,
        last_referral=referral,
        last_referral_at=referral_at,
        created_at=now,
        updated_at=now,
    )
    incoming = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.account_id, table.c.user_id],
        set_={
            "last_message_at": later_of(table.c.last_message_at, incoming.last_message_at),
            "last_inbound_at": later_of(table.c.last_inbound_at, incoming.last_inbound_at),
            "customer_read_at": later_of(table.c.customer_read_at, incoming.customer_read_at),
            "customer_read_mid": case(
                (
                    _moves_forward(table.c.customer_read_at, incoming.customer_read_at),
                    incoming.customer_read_mid,
                ),
                else_=table.c.customer_read_mid,
            ),
            "last_referral": case(
                (
                    _moves_forward(table.c.last_referral_at, incoming.last_referral_at),
                    incoming.last_referral,
                ),
                else_=table.c.last_referral,
            ),
            "last_referral_at": later_of(table.c.last_referral_at, incoming.last_referral_at),
            "updated_at": now,
        },
    ).returning(table.c.id)
    return session.execute(stmt).scalar_one()


def _moves_forward(
    current: ColumnElement[Any], incoming: ColumnElement[Any]
) -> ColumnElement[bool]:
    return incoming.is_not(None) & (current.is_(None) | (incoming > current))


def get(session: Session, *, account_id: str, user_id: str) -> Conversation | None:
    return session.scalar(
        select(Conversation).where(
            Conversation.account_id == account_id, Conversation.user_id == user_id
        )
    )


def latest_for_user(session: Session, *, user_id: str) -> Conversation | None:
    """The customer's most recently active conversation.

    An IGSID is specific to one business account, so in practice there is exactly one.
    """
    query = (
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.last_message_at.desc().nulls_last())
        .limit(1)
    )
    return session.scalar(query)


def page(
    session: Session, *, limit: int, after: Position | None = None
) -> list[tuple[Conversation, User | None]]:
    """Conversations with messages, newest activity first, from just after `after`; with
    their customers. One statement, walking the (last_message_at, id) index."""
    query = (
        select(Conversation, User)
        .outerjoin(User, User.id == Conversation.user_id)
        .where(Conversation.last_message_at.is_not(None))
    )
    if after is not None:
        query = query.where(
            tuple_(Conversation.last_message_at, Conversation.id) < tuple_(after.at, after.id)
        )
    query = query.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
    return [(conversation, user) for conversation, user in session.execute(query.limit(limit))]


def with_customer(session: Session, *, user_id: str) -> tuple[Conversation, User | None] | None:
    """The customer's conversation (see latest_for_user) and their cached profile."""
    query = (
        select(Conversation, User)
        .outerjoin(User, User.id == Conversation.user_id)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.last_message_at.desc().nulls_last())
        .limit(1)
    )
    row = session.execute(query).first()
    return (row[0], row[1]) if row else None
