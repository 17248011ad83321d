"""SQL for `reactions`: one per (message, user), the latest event wins."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from app.models import Reaction, utcnow
from app.repositories.base import Position, rows_upsert
from app.repositories.messages import MESSAGES, position, sent_order
from app.repositories.rows import ReactionRow
from app.repositories.rules import LATEST_REACTION


def store_many(session: Session, rows: Sequence[ReactionRow]) -> set[tuple[str, str]]:
    """Reactions (`reaction` set) and unreactions (`reaction` None) of (mid, user_id), unless
    a later event is stored (LATEST_REACTION); the (mid, user_id) pairs that changed.

    Each (mid, user_id) at most once.
    """
    now = utcnow()
    returned = rows_upsert(
        session,
        key="reactions.store",
        table=Reaction.__table__,
        # One order for every writer, so concurrent deliveries lock rows alike (no deadlock).
        rows=sorted(rows, key=lambda row: (row.mid, row.user_id)),
        same={"created_at": now, "updated_at": now},
        finish=_latest_wins,
    )
    return {(mid, user_id) for mid, user_id in returned}


def _latest_wins(insert: Any) -> Any:
    stored, incoming = Reaction.__table__.c, insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[stored.mid, stored.user_id],
        set_={**LATEST_REACTION.sql_values(incoming), "updated_at": incoming.updated_at},
        where=LATEST_REACTION.sql_wins(stored, incoming),
    ).returning(stored.mid, stored.user_id)


def store(
    session: Session,
    *,
    mid: str,
    user_id: str,
    reaction: str | None,
    emoji: str | None,
    reacted_at: datetime,
) -> bool:
    """One reaction (see store_many); True when it changed what was stored."""
    row = ReactionRow(
        mid=mid, user_id=user_id, reaction=reaction, emoji=emoji, reacted_at=reacted_at
    )
    return bool(store_many(session, [row]))


def current_in_page(
    session: Session, *, conversation_id: int, oldest: Position, newest: Position
) -> Sequence[Row[Any]]:
    """The standing reactions to a conversation's messages from `oldest` to `newest`
    (a history page), as rows: one index range over the page's messages, fixed parameters."""
    parameters = {
        "conversation_id": conversation_id,
        "oldest_at": oldest.at,
        "oldest_id": oldest.id,
        "newest_at": newest.at,
        "newest_id": newest.id,
    }
    return session.connection().execute(_CURRENT_IN_PAGE, parameters).all()


def current_for(session: Session, mids: list[str]) -> Sequence[Row[Any]]:
    """The standing reactions (not withdrawn) to these messages, as rows."""
    if not mids:
        return []
    return session.connection().execute(_CURRENT, {"mids": mids}).all()


_CURRENT = (
    select(Reaction.__table__)
    .where(Reaction.mid.in_(bindparam("mids", expanding=True)), Reaction.reaction.is_not(None))
    .order_by(Reaction.reacted_at, Reaction.id)
)


_CURRENT_IN_PAGE = (
    select(Reaction.__table__)
    .join(MESSAGES, MESSAGES.c.mid == Reaction.mid)
    .where(
        MESSAGES.c.conversation_id == bindparam("conversation_id"),
        sent_order >= position("oldest"),
        sent_order <= position("newest"),
        Reaction.reaction.is_not(None),
    )
    .order_by(Reaction.reacted_at, Reaction.id)
)


def get(session: Session, *, mid: str, user_id: str) -> Reaction | None:
    return session.scalar(select(Reaction).where(Reaction.mid == mid, Reaction.user_id == user_id))
