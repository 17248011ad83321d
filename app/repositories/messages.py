"""SQL for `messages`."""

from typing import Any

from sqlalchemy import case, delete, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Message
from app.repositories.base import later_of, upsert_insert

MID_MERGE_ATTEMPTS = 3


# What a message event says about its message; a placeholder row takes all of it.
MESSAGE_FIELDS = (
    "conversation_id",
    "direction",
    "sender_id",
    "recipient_id",
    "reply_to",
    "quick_reply_payload",
    "postback_payload",
    "referral",
    "is_unsupported",
    "source",
    "status",
)


def store_message(session: Session, values: dict[str, Any]) -> None:
    """Store a message event once by `mid`, whatever came before it.

    - No row yet: insert it.
    - A placeholder (an edit or unsend came first): fill it in, keeping the edited text or
      the deletion.
    - The row of a message we sent through the API, and this is its echo: take Meta's time.
    - Otherwise (a duplicate): change nothing.
    """
    table = Message.__table__
    stmt = upsert_insert(session, table).values(**values, is_placeholder=False)
    incoming = stmt.excluded
    placeholder = table.c.is_placeholder
    echo_of_our_send = (table.c.source == "api") & (incoming.source == "echo")
    set_: dict[str, Any] = {
        name: case((placeholder, incoming[name]), else_=table.c[name]) for name in MESSAGE_FIELDS
    }
    set_["text"] = case(
        (table.c.is_deleted, null()),
        (table.c.edit_count > 0, table.c.text),
        (placeholder, incoming.text),
        else_=table.c.text,
    )
    set_["attachments"] = case(
        (table.c.is_deleted, null()), (placeholder, incoming.attachments), else_=table.c.attachments
    )
    set_["sent_at"] = case(
        (placeholder | echo_of_our_send, incoming.sent_at), else_=table.c.sent_at
    )
    set_["is_placeholder"] = False
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.mid],
        set_=set_,
        where=placeholder | (echo_of_our_send & (table.c.sent_at != incoming.sent_at)),
    )
    session.execute(stmt)


def store_edit(
    session: Session, *, placeholder: dict[str, Any], text: str | None, num_edit: int
) -> None:
    """Apply an edit unless a later one (higher `num_edit`) is stored; an unsent message
    stays empty. Before its message, the edit makes a placeholder row."""
    table = Message.__table__
    stmt = upsert_insert(session, table).values(
        **placeholder,
        text=text,
        edit_count=num_edit,
        edited_at=placeholder["sent_at"],
        is_placeholder=True,
    )
    incoming = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.mid],
        set_={
            "text": case((table.c.is_deleted, null()), else_=incoming.text),
            "edit_count": incoming.edit_count,
            "edited_at": incoming.edited_at,
        },
        where=incoming.edit_count > table.c.edit_count,
    )
    session.execute(stmt)


def store_unsend(session: Session, *, placeholder: dict[str, Any]) -> None:
    """Unsend: the message becomes a tombstone (no text, no attachments), for good.
    Before its message, the unsend makes a placeholder tombstone."""
    table = Message.__table__
    stmt = upsert_insert(session, table).values(
        **placeholder,
        text=None,
        attachments=None,
        is_deleted=True,
        deleted_at=placeholder["sent_at"],
        is_placeholder=True,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.mid],
        set_={
            "is_deleted": True,
            "text": null(),
            "attachments": null(),
            "deleted_at": later_of(table.c.deleted_at, stmt.excluded.deleted_at),
        },
    )
    session.execute(stmt)


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
