"""SQL for `reactions`: one per (message, user), the latest event wins."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Reaction, utcnow
from app.repositories.base import changed_rows, upsert_insert


def store(
    session: Session,
    *,
    mid: str,
    user_id: str,
    reaction: str | None,
    emoji: str | None,
    reacted_at: datetime,
) -> bool:
    """React (`reaction` set) or unreact (`reaction` None) unless a later event is stored.

    At the same instant an unreact wins over a react (and of two reacts, the greater name),
    so any order of arrival ends the same.
    """
    table = Reaction.__table__
    now = utcnow()
    stmt = upsert_insert(session, table).values(
        mid=mid,
        user_id=user_id,
        reaction=reaction,
        emoji=emoji,
        reacted_at=reacted_at,
        created_at=now,
        updated_at=now,
    )
    incoming = stmt.excluded
    same_instant = incoming.reacted_at == table.c.reacted_at
    newer = (
        (incoming.reacted_at > table.c.reacted_at)
        | (same_instant & incoming.reaction.is_(None) & table.c.reaction.is_not(None))
        # Two reactions at the same millisecond: pick one deterministically.
        | (same_instant & (incoming.reaction > table.c.reaction))
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.mid, table.c.user_id],
        set_={
            "reaction": incoming.reaction,
            "emoji": incoming.emoji,
            "reacted_at": incoming.reacted_at,
            "updated_at": now,
        },
        where=newer,
    )
    return changed_rows(session.execute(stmt)) > 0


def current_for(session: Session, mids: list[str]) -> list[Reaction]:
    """The standing reactions (not withdrawn) to these messages."""
    if not mids:
        return []
    query = select(Reaction).where(Reaction.mid.in_(mids), Reaction.reaction.is_not(None))
    return list(session.scalars(query.order_by(Reaction.reacted_at, Reaction.id)))


def get(session: Session, *, mid: str, user_id: str) -> Reaction | None:
    return session.scalar(select(Reaction).where(Reaction.mid == mid, Reaction.user_id == user_id))
