"""SQL for `conversations`: one per (business account, customer)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Conversation, utcnow
from app.repositories.base import later_of, upsert_insert


def upsert(
    session: Session,
    *,
    account_id: str,
    user_id: str,
    message_at: datetime | None = None,
    inbound_at: datetime | None = None,
) -> int:
    """Create the conversation if needed and move its clocks forward; return its id."""
    table = Conversation.__table__
    now = utcnow()
    stmt = upsert_insert(session, table).values(
        account_id=account_id,
        user_id=user_id,
        last_message_at=message_at,
        last_inbound_at=inbound_at,
        created_at=now,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.account_id, table.c.user_id],
        set_={
            "last_message_at": later_of(table.c.last_message_at, stmt.excluded.last_message_at),
            "last_inbound_at": later_of(table.c.last_inbound_at, stmt.excluded.last_inbound_at),
            "updated_at": now,
        },
    ).returning(table.c.id)
    return session.execute(stmt).scalar_one()


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
