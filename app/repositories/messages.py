"""SQL for `messages`."""

from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Message
from app.repositories.base import upsert_insert

MID_MERGE_ATTEMPTS = 3


def insert_if_new(session: Session, values: dict[str, Any]) -> bool:
    """Insert a message unless one with its `mid` is stored; True when it was inserted."""
    table = Message.__table__
    stmt = (
        upsert_insert(session, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[table.c.mid])
        .returning(table.c.id)
    )
    return session.execute(stmt).first() is not None


def insert_echo(session: Session, values: dict[str, Any]) -> None:
    """Store an echo of a business message; if it is one we sent through the API, the row
    exists already and takes Meta's time of the message."""
    table = Message.__table__
    stmt = upsert_insert(session, table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.mid],
        set_={"sent_at": stmt.excluded.sent_at},
        where=(table.c.source == "api") & (table.c.sent_at != stmt.excluded.sent_at),
    )
    session.execute(stmt)


def mark_deleted(session: Session, *, mid: str, tombstone: dict[str, Any]) -> None:
    """Unsend: clear the message's content. If it is not stored yet, store a tombstone."""
    result = session.execute(
        update(Message)
        .where(Message.mid == mid)
        .values(is_deleted=True, text=None, attachments=None)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        insert_if_new(
            session,
            {**tombstone, "mid": mid, "is_deleted": True, "text": None, "attachments": None},
        )


def add(session: Session, **values: Any) -> Message:
    message = Message(**values)
    session.add(message)
    session.flush()
    return message


def attach_mid(session: Session, *, message_id: int, mid: str) -> None:
    """Mark an API send as sent with Meta's `message_id`.

    The echo webhook of the same send may already be stored under that mid (it can beat Meta's
    HTTP answer). The API row is the one to keep, so the echo row is folded into it, and its
    time (Meta's clock) becomes the message's.
    """
    for attempt in range(MID_MERGE_ATTEMPTS):
        try:
            with session.begin_nested():
                echo_sent_at = session.execute(
                    delete(Message)
                    .where(Message.mid == mid, Message.id != message_id)
                    .returning(Message.sent_at)
                ).scalar()
                values: dict[str, Any] = {"mid": mid, "status": "sent"}
                if echo_sent_at is not None:
                    values["sent_at"] = echo_sent_at
                session.execute(update(Message).where(Message.id == message_id).values(**values))
            return
        except IntegrityError:
            # An echo was inserted between our DELETE and UPDATE; it is committed now.
            if attempt == MID_MERGE_ATTEMPTS - 1:
                raise


def mark_failed(session: Session, *, message_id: int, error: dict[str, Any]) -> None:
    session.execute(
        update(Message).where(Message.id == message_id).values(status="failed", error=error)
    )


def latest_visible(session: Session, *, conversation_id: int, limit: int) -> list[Message]:
    """The newest `limit` messages of a conversation, newest first, without failed sends."""
    query = (
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            or_(Message.status.is_(None), Message.status == "sent"),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
