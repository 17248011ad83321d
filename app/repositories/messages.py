"""SQL for `messages`."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    delete,
    func,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased

from app.models import Conversation, Message, UTCDateTime
from app.repositories.base import Position, later_of, rows_upsert

BEGINNING_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)


# What any event about a message knows of it: enough for a placeholder row.
PLACEHOLDER_FIELDS = (
    "mid",
    "conversation_id",
    "direction",
    "sender_id",
    "recipient_id",
    "sent_at",
    "created_at",
    "source",
    "status",
)
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


def store_messages(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Store message events once by `mid`, whatever came before them; the mids that changed.

    - No row yet: insert it.
    - A placeholder (an edit or unsend came first): fill it in, keeping the edited text or
      the deletion.
    - The row of a message we sent through the API, and this is its echo: take Meta's time.
    - Otherwise (a duplicate): change nothing.

    The rows have MESSAGE_FIELDS, mid, text, attachments, sent_at and created_at; each mid
    at most once.
    """
    placeholders = [
        {**row, "is_placeholder": False, "is_deleted": False, "edit_count": 0}
        for row in sorted(rows, key=_by_mid)
    ]
    returned = rows_upsert(
        session, key="messages.store", table=Message.__table__, rows=placeholders, finish=_fill_in
    )
    return {mid for (mid,) in returned}


def _fill_in(insert: Any) -> Any:
    table, incoming = Message.__table__, insert.excluded
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
    set_["is_placeholder"] = incoming.is_placeholder  # false: the message itself is here
    return insert.on_conflict_do_update(
        index_elements=[table.c.mid],
        set_=set_,
        where=placeholder | (echo_of_our_send & (table.c.sent_at != incoming.sent_at)),
    ).returning(table.c.mid)


def store_edits(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Apply edits unless a later one (higher `edit_count`) is stored; an unsent message stays
    empty. Before its message, an edit makes a placeholder row. The mids that changed.

    The rows have PLACEHOLDER_FIELDS, text and edit_count; each mid at most once.
    """
    edits = [
        {
            **row,
            "edited_at": row["sent_at"],
            "is_placeholder": True,
            "is_deleted": False,
            "is_unsupported": False,
        }
        for row in sorted(rows, key=_by_mid)
    ]

    def finish(insert: Any) -> Any:
        table, incoming = Message.__table__, insert.excluded
        return insert.on_conflict_do_update(
            index_elements=[table.c.mid],
            set_={
                "text": case((table.c.is_deleted, null()), else_=incoming.text),
                "edit_count": incoming.edit_count,
                "edited_at": incoming.edited_at,
            },
            where=incoming.edit_count > table.c.edit_count,
        ).returning(table.c.mid)

    returned = rows_upsert(
        session, key="messages.edit", table=Message.__table__, rows=edits, finish=finish
    )
    return {mid for (mid,) in returned}


def store_unsends(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Unsend: the messages become tombstones (no text, no attachments), for good. Before its
    message, an unsend makes a placeholder tombstone. The mids that changed.

    The rows have PLACEHOLDER_FIELDS (`sent_at`: when it was unsent); each mid at most once.
    """
    tombstones = [
        {
            **row,
            "text": None,
            "attachments": None,
            "is_deleted": True,
            "deleted_at": row["sent_at"],
            "is_placeholder": True,
            "is_unsupported": False,
            "edit_count": 0,
        }
        for row in sorted(rows, key=_by_mid)
    ]

    def finish(insert: Any) -> Any:
        table, incoming = Message.__table__, insert.excluded
        return insert.on_conflict_do_update(
            index_elements=[table.c.mid],
            set_={
                "is_deleted": incoming.is_deleted,
                "text": null(),
                "attachments": null(),
                "deleted_at": later_of(table.c.deleted_at, incoming.deleted_at),
            },
            where=~table.c.is_deleted
            | table.c.deleted_at.is_(None)
            | (incoming.deleted_at > table.c.deleted_at),
        ).returning(table.c.mid)

    returned = rows_upsert(
        session, key="messages.unsend", table=Message.__table__, rows=tombstones, finish=finish
    )
    return {mid for (mid,) in returned}


def _by_mid(row: dict[str, Any]) -> str:
    # One order for every writer, so concurrent deliveries lock rows alike (no deadlock).
    return str(row["mid"])


def add(session: Session, **values: Any) -> Message:
    message = Message(**values)
    session.add(message)
    session.flush()
    return message


def attach_mid(session: Session, *, message_id: int, mid: str) -> datetime:
    """Mark an API send as sent with Meta's `message_id`; return its sent_at.

    The echo webhook of the same send may already be stored under that mid (it can beat Meta's
    HTTP answer). The API row is the one to keep, so the echo row is folded into it, and its
    time (Meta's clock) becomes the message's. If an echo is stored between the two
    statements, the UPDATE fails on the unique mid: the caller retries the transaction.
    """
    parameters = {"sent_mid": mid, "message_id": message_id}
    echo_sent_at = session.execute(_DELETE_ECHO, parameters).scalar()
    return session.execute(_MARK_SENT, {**parameters, "echo_sent_at": echo_sent_at}).scalar_one()


_DELETE_ECHO = (
    delete(Message.__table__)
    .where(Message.mid == bindparam("sent_mid"), Message.id != bindparam("message_id"))
    .returning(Message.sent_at)
)
_MARK_SENT = (
    update(Message.__table__)
    .where(Message.id == bindparam("message_id"))
    .values(
        mid=bindparam("sent_mid"),
        status="sent",
        sent_at=func.coalesce(bindparam("echo_sent_at", type_=UTCDateTime()), Message.sent_at),
    )
    .returning(Message.sent_at)
)


def mark_failed(session: Session, *, message_id: int, error: dict[str, Any]) -> None:
    session.execute(
        update(Message).where(Message.id == message_id).values(status="failed", error=error)
    )


def latest_visible(session: Session, *, conversation_id: int, limit: int) -> list[Message]:
    """The newest `limit` messages of a conversation, newest first, without failed sends."""
    query = (
        select(Message)
        .where(Message.conversation_id == conversation_id, _visible())
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def page(
    session: Session,
    *,
    conversation_id: int,
    limit: int,
    before: Position | None = None,
    after: Position | None = None,
) -> list[Message]:
    """Up to `limit` messages of a conversation, newest first: the newest ones, those just
    older than `before`, or those just newer than `after`. One index range scan."""
    key = tuple_(Message.sent_at, Message.id)
    query = select(Message).where(Message.conversation_id == conversation_id)
    if after is not None:
        query = query.where(key > tuple_(after.at, after.id))
        query = query.order_by(Message.sent_at.asc(), Message.id.asc())
        return list(reversed(session.scalars(query.limit(limit)).all()))
    if before is not None:
        query = query.where(key < tuple_(before.at, before.id))
    query = query.order_by(Message.sent_at.desc(), Message.id.desc())
    return list(session.scalars(query.limit(limit)))


def get_by_mid(session: Session, mid: str) -> Message | None:
    return session.scalar(select(Message).where(Message.mid == mid))


def get_by_idempotency_key(session: Session, key: str) -> Message | None:
    return session.scalar(select(Message).where(Message.idempotency_key == key))


def _visible(model: Any = Message) -> ColumnElement[bool]:
    """Messages a history shows: everything but sends that failed or are still in flight."""
    return or_(model.status.is_(None), model.status == "sent")


def last_visible_of(session: Session, conversation_ids: list[int]) -> dict[int, Message]:
    """Each conversation's newest shown message, in one statement (an index probe each)."""
    if not conversation_ids:
        return {}
    newest = (
        select(Message.id)
        .where(Message.conversation_id == Conversation.id, _visible())
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
        .correlate(Conversation)
        .scalar_subquery()
    )
    ids = select(newest).where(Conversation.id.in_(conversation_ids))
    return {
        m.conversation_id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))
    }


def unread_counts(session: Session, conversation_ids: list[int]) -> dict[int, int]:
    """Per conversation, the customer's messages after the business's last one.

    Each count is an index range scan from the business's last message on, so it costs what
    is unread, not the whole history.
    """
    if not conversation_ids:
        return {}
    outbound, inbound = aliased(Message), aliased(Message)
    last_outbound = (
        select(outbound.sent_at)
        .where(
            outbound.conversation_id == Conversation.id,
            outbound.direction == "outbound",
            _visible(outbound),
        )
        .order_by(outbound.sent_at.desc())
        .limit(1)
        .correlate(Conversation)
        .scalar_subquery()
    )
    unread = (
        select(func.count())
        .select_from(inbound)
        .where(
            inbound.conversation_id == Conversation.id,
            inbound.sent_at > func.coalesce(last_outbound, BEGINNING_OF_TIME),
            inbound.direction == "inbound",
            inbound.is_deleted.is_(False),
        )
        .correlate(Conversation)
        .scalar_subquery()
    )
    query = select(Conversation.id, unread).where(Conversation.id.in_(conversation_ids))
    return {conversation_id: count for conversation_id, count in session.execute(query)}
