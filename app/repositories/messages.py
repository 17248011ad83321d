"""SQL for `messages`."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Row,
    Table,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from app.models import Conversation, Message, Reaction, UTCDateTime
from app.repositories.base import Position, rows_upsert
from app.repositories.rows import EditRow, MessageHead, MessageRow, UnsendRow
from app.repositories.rules import FIRST_MESSAGE_STANDS, HIGHER_EDIT, LATER_UNSEND

BEGINNING_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)


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
# What every row of each kind of write adds to its row's fields.
_A_MESSAGE = {"is_placeholder": False, "is_deleted": False, "edit_count": 0}
_A_PLACEHOLDER = {"is_placeholder": True, "is_deleted": False, "edit_count": 0}
_AN_EDIT = {"is_placeholder": True, "is_deleted": False, "is_unsupported": False}
_A_TOMBSTONE = {
    "text": None,
    "attachments": None,
    "is_deleted": True,
    "is_placeholder": True,
    "is_unsupported": False,
    "edit_count": 0,
}


def store_messages(session: Session, rows: Sequence[MessageRow]) -> dict[str, Row[Any]]:
    """Store message events once by `mid`, whatever came before them; the rows that changed,
    by mid, as `with_conversation` reads them (the INSERT returns them: no read after it).

    - No row yet: insert it.
    - A placeholder (an edit or unsend came first, or a backfill could not get the content),
      or a backfilled copy and this is the webhook's: fill it in, keeping the edited text or
      the deletion.
    - The row of a message we sent through the API, and this is its echo: take Meta's time.
    - Otherwise (a duplicate): change nothing (FIRST_MESSAGE_STANDS).

    Each mid at most once.
    """
    returned = rows_upsert(
        session,
        key="messages.store",
        table=Message.__table__,
        rows=sorted(rows, key=_by_mid),
        same=_A_MESSAGE,
        finish=_fill_in,
    )
    return {row._mapping["mid"]: row for row in returned}


def _fill_in(insert: Any) -> Any:
    stored, incoming = Message.__table__.c, insert.excluded
    # A row standing in for the message: an edit or unsend that came first, or a backfill
    # (the Conversations API's copy gives way to the webhook's, which says more).
    placeholder = stored.is_placeholder | (
        (stored.source == "backfill") & (incoming.source != "backfill")
    )
    echo_of_our_send = (stored.source == "api") & (incoming.source == "echo")
    set_: dict[str, Any] = {
        name: case((placeholder, incoming[name]), else_=stored[name]) for name in MESSAGE_FIELDS
    }
    set_["text"] = case(
        (stored.is_deleted, null()),
        (stored.edit_count > 0, stored.text),
        (placeholder, incoming.text),
        else_=stored.text,
    )
    set_["attachments"] = case(
        (stored.is_deleted, null()), (placeholder, incoming.attachments), else_=stored.attachments
    )
    set_["sent_at"] = case((placeholder | echo_of_our_send, incoming.sent_at), else_=stored.sent_at)
    set_["is_placeholder"] = incoming.is_placeholder  # false: the message itself is here
    return insert.on_conflict_do_update(
        index_elements=[stored.mid],
        set_=set_,
        # Another message event never wins; what came before it, or our own send, may.
        where=or_(
            FIRST_MESSAGE_STANDS.sql_wins(stored, incoming),
            placeholder,
            echo_of_our_send & (stored.sent_at != incoming.sent_at),
        ),
    ).returning(*_SNAPSHOT_COLUMNS)


def store_placeholders(session: Session, rows: Sequence[MessageRow]) -> set[str]:
    """Store messages known by id only (a backfill of what Meta keeps no content of) unless
    their mid is stored already; the mids stored."""
    returned = rows_upsert(
        session,
        key="messages.placeholder",
        table=Message.__table__,
        rows=sorted(rows, key=_by_mid),
        same=_A_PLACEHOLDER,
        finish=lambda insert: insert.on_conflict_do_nothing(
            index_elements=[Message.__table__.c.mid]
        ).returning(Message.__table__.c.mid),
    )
    return {mid for (mid,) in returned}


def store_edits(session: Session, rows: Sequence[EditRow]) -> set[str]:
    """Apply edits unless a later one (higher `edit_count`) is stored; an unsent message stays
    empty. Before its message, an edit makes a placeholder row. The mids that changed.

    Each mid at most once.
    """
    returned = rows_upsert(
        session,
        key="messages.edit",
        table=Message.__table__,
        rows=sorted(rows, key=_by_mid),
        same=_AN_EDIT,
        finish=_later_edit,
    )
    return {mid for (mid,) in returned}


def _later_edit(insert: Any) -> Any:
    stored, incoming = Message.__table__.c, insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[stored.mid],
        set_={
            **HIGHER_EDIT.sql_values(incoming),
            "text": case((stored.is_deleted, null()), else_=incoming.text),
        },
        where=HIGHER_EDIT.sql_wins(stored, incoming),
    ).returning(stored.mid)


def store_unsends(session: Session, rows: Sequence[UnsendRow]) -> set[str]:
    """Unsend: the messages become tombstones (no text, no attachments), for good. Before its
    message, an unsend makes a placeholder tombstone. The mids that changed.

    Each mid at most once.
    """
    returned = rows_upsert(
        session,
        key="messages.unsend",
        table=Message.__table__,
        rows=sorted(rows, key=_by_mid),
        same=_A_TOMBSTONE,
        finish=_tombstone,
    )
    return {mid for (mid,) in returned}


def _tombstone(insert: Any) -> Any:
    stored, incoming = Message.__table__.c, insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[stored.mid],
        set_={
            **LATER_UNSEND.sql_values(incoming),
            "is_deleted": incoming.is_deleted,
            "text": null(),
            "attachments": null(),
        },
        where=LATER_UNSEND.sql_wins(stored, incoming),
    ).returning(stored.mid)


def _by_mid(row: MessageHead) -> str:
    # One order for every writer, so concurrent deliveries lock rows alike (no deadlock).
    return row.mid


def add(session: Session, **values: Any) -> Message:
    """Insert one message (a Core INSERT, no unit of work); return it as a detached object
    carrying every column, the new id included."""
    values = {**_NEW_MESSAGE, **values}
    values["id"] = session.connection().execute(_INSERT, values).scalar_one()
    return Message(**values)


# Every column a new message starts with; the caller's values win.
_NEW_MESSAGE: dict[str, Any] = {
    column.key: None for column in Message.__table__.columns if column.key != "id"
} | {"is_deleted": False, "is_unsupported": False, "edit_count": 0, "is_placeholder": False}
_TABLE = cast(Table, Message.__table__)
_INSERT = insert(_TABLE).returning(_TABLE.c.id)


def attach_mid(session: Session, *, row_id: int, mid: str) -> Row[Any]:
    """Mark an API send (the row `row_id`) as sent with Meta's `mid`; return the row as
    `with_conversation` reads it (the UPDATE returns it).

    The echo webhook of the same send may already be stored under that mid (it can beat Meta's
    HTTP answer). The API row is the one to keep, so the echo row is folded into it, and its
    time (Meta's clock) becomes the message's. If an echo is stored between the two
    statements, the UPDATE fails on the unique mid: the caller retries the transaction.
    """
    parameters = {"sent_mid": mid, "row_id": row_id}
    # Core statements on the session's connection: through Session.execute, an UPDATE
    # naming ORM attributes is ORM-enabled and synchronizes the session's objects with what
    # it returns (an eighth of a send's CPU, for nothing: the caller sets what it needs).
    connection = session.connection()
    echo_sent_at = connection.execute(_DELETE_ECHO, parameters).scalar()
    return connection.execute(_MARK_SENT, {**parameters, "echo_sent_at": echo_sent_at}).one()


_DELETE_ECHO = (
    delete(_TABLE)
    .where(_TABLE.c.mid == bindparam("sent_mid"), _TABLE.c.id != bindparam("row_id"))
    .returning(_TABLE.c.sent_at)
)


def mark_failed(session: Session, *, row_id: int, error: dict[str, Any]) -> None:
    """Mark an API send (the row `row_id`) as refused, with Meta's error."""
    session.execute(
        update(Message).where(Message.id == row_id).values(status="failed", error=error)
    )


# Reads return plain rows through the session's connection, not tracked objects (loading 50
# ORM objects costs more than the query); read their columns through `row._mapping`. Their
# statements are built once, with bind parameters: building one costs more than running it.
MESSAGES = Message.__table__
sent_order = tuple_(MESSAGES.c.sent_at, MESSAGES.c.id)
_NEWEST_FIRST = (MESSAGES.c.sent_at.desc(), MESSAGES.c.id.desc())


def _visible(table: Any = MESSAGES) -> ColumnElement[bool]:
    """Messages a history shows: everything but sends that failed or are still in flight."""
    return or_(table.c.status.is_(None), table.c.status == "sent")


def position(name: str) -> Any:
    """A (sent_at, id) pair of bound parameters `<name>_at` and `<name>_id`, to compare with
    `sent_order`."""
    return tuple_(bindparam(f"{name}_at", type_=MESSAGES.c.sent_at.type), bindparam(f"{name}_id"))


_LATEST_VISIBLE = (
    select(
        MESSAGES.c.sender_id,
        MESSAGES.c.recipient_id,
        MESSAGES.c.text,
        MESSAGES.c.attachments,
        MESSAGES.c.is_deleted,
        MESSAGES.c.is_unsupported,
        MESSAGES.c.is_placeholder,
        MESSAGES.c.source,
    )
    .where(MESSAGES.c.conversation_id == bindparam("conversation_id"), _visible())
    .order_by(*_NEWEST_FIRST)
    .limit(bindparam("limit"))
)
# Whether a reaction stands on the message: its reactions are read only when one does. (The
# message's mid is named in SQL, so that a write's RETURNING clause can hold it too.)
HAS_REACTIONS = (
    exists()
    .where(
        Reaction.__table__.c.mid == literal_column("messages.mid"),
        Reaction.__table__.c.reaction.is_not(None),
    )
    .label("has_reactions")
)
_PAGE = select(MESSAGES, HAS_REACTIONS).where(
    MESSAGES.c.conversation_id == bindparam("conversation_id")
)
_NEWEST_PAGE = _PAGE.order_by(*_NEWEST_FIRST).limit(bindparam("limit"))
_OLDER_PAGE = (
    _PAGE.where(sent_order < position("before")).order_by(*_NEWEST_FIRST).limit(bindparam("limit"))
)
_NEWER_PAGE = (
    _PAGE.where(sent_order > position("after"))
    .order_by(MESSAGES.c.sent_at.asc(), MESSAGES.c.id.asc())
    .limit(bindparam("limit"))
)
_BY_MID = select(MESSAGES).where(MESSAGES.c.mid == bindparam("mid"))


def latest_visible(session: Session, *, conversation_id: int, limit: int) -> Sequence[Row[Any]]:
    """The newest `limit` messages of a conversation, newest first, without failed sends:
    who wrote to whom, and what (the columns a text or its placeholder needs)."""
    parameters = {"conversation_id": conversation_id, "limit": limit}
    return session.connection().execute(_LATEST_VISIBLE, parameters).all()


def page(
    session: Session,
    *,
    conversation_id: int,
    limit: int,
    before: Position | None = None,
    after: Position | None = None,
) -> Sequence[Row[Any]]:
    """Up to `limit` messages of a conversation, newest first: the newest ones, those just
    older than `before`, or those just newer than `after`. One index range scan."""
    parameters: dict[str, Any] = {"conversation_id": conversation_id, "limit": limit}
    connection = session.connection()
    if after is not None:
        parameters |= {"after_at": after.at, "after_id": after.id}
        return list(reversed(connection.execute(_NEWER_PAGE, parameters).all()))
    if before is not None:
        parameters |= {"before_at": before.at, "before_id": before.id}
        return connection.execute(_OLDER_PAGE, parameters).all()
    return connection.execute(_NEWEST_PAGE, parameters).all()


def get_by_mid(session: Session, mid: str) -> Message | None:
    return session.scalar(select(Message).where(Message.mid == mid))


def row_by_mid(session: Session, mid: str) -> Row[Any] | None:
    return session.connection().execute(_BY_MID, {"mid": mid}).first()


def get_by_idempotency_key(session: Session, key: str) -> Message | None:
    return session.scalar(select(Message).where(Message.idempotency_key == key))


_CONVERSATIONS = Conversation.__table__
_REACTIONS = Reaction.__table__
_IDS: BindParameter[Any] = bindparam("conversation_ids", expanding=True)
_NEWEST_SHOWN = (
    select(MESSAGES.c.id)
    .where(MESSAGES.c.conversation_id == _CONVERSATIONS.c.id, _visible())
    .order_by(*_NEWEST_FIRST)
    .limit(1)
    .correlate(_CONVERSATIONS)
    .scalar_subquery()
)
_LAST_VISIBLE = select(MESSAGES).where(
    MESSAGES.c.id.in_(select(_NEWEST_SHOWN).where(_CONVERSATIONS.c.id.in_(_IDS)))
)


def last_visible_of(session: Session, conversation_ids: list[int]) -> dict[int, Row[Any]]:
    """Each conversation's newest shown message, in one statement (an index probe each)."""
    if not conversation_ids:
        return {}
    rows = session.connection().execute(_LAST_VISIBLE, {"conversation_ids": conversation_ids})
    return {row._mapping["conversation_id"]: row for row in rows.all()}


def _unread_counts() -> Any:
    outbound, inbound = MESSAGES.alias("outbound"), MESSAGES.alias("inbound")
    last_outbound = (
        select(outbound.c.sent_at)
        .where(
            outbound.c.conversation_id == _CONVERSATIONS.c.id,
            outbound.c.direction == "outbound",
            _visible(outbound),
        )
        .order_by(outbound.c.sent_at.desc())
        .limit(1)
        .correlate(_CONVERSATIONS)
        .scalar_subquery()
    )
    unread = (
        select(func.count())
        .select_from(inbound)
        .where(
            inbound.c.conversation_id == _CONVERSATIONS.c.id,
            inbound.c.sent_at > func.coalesce(last_outbound, BEGINNING_OF_TIME),
            inbound.c.direction == "inbound",
            inbound.c.is_deleted.is_(False),
        )
        .correlate(_CONVERSATIONS)
        .scalar_subquery()
    )
    return select(_CONVERSATIONS.c.id, unread).where(_CONVERSATIONS.c.id.in_(_IDS))


_UNREAD_COUNTS = _unread_counts()


def unread_counts(session: Session, conversation_ids: list[int]) -> dict[int, int]:
    """Per conversation, the customer's messages after the business's last one.

    Each count is an index range scan from the business's last message on, so it costs what
    is unread, not the whole history.
    """
    if not conversation_ids:
        return {}
    rows = session.connection().execute(_UNREAD_COUNTS, {"conversation_ids": conversation_ids})
    return dict(rows.tuples().all())


def known_mids(session: Session, mids: Sequence[str]) -> set[str]:
    """Of these mids, those the service has the message of (or knows Meta keeps no content
    of: a backfilled placeholder); an edit or unsend that came without its message does not
    count."""
    if not mids:
        return set()
    table = MESSAGES
    known = or_(table.c.is_placeholder.is_(False), table.c.source == "backfill")
    return set(session.scalars(select(table.c.mid).where(table.c.mid.in_(list(mids)), known)).all())


# What an event's snapshot reads of a message: its columns, its conversation's and whether
# a reaction stands on it (the reactions are read only for those that have one). The
# subqueries name the message's columns in SQL: SQLAlchemy does not correlate a RETURNING
# clause's subqueries, and the write of a message returns these columns too.
_ITS_CONVERSATION_ID: ColumnElement[Any] = literal_column("messages.conversation_id")
_SNAPSHOT_COLUMNS: tuple[Any, ...] = (
    *MESSAGES.c,
    *(
        select(column)
        .where(_CONVERSATIONS.c.id == _ITS_CONVERSATION_ID)
        .scalar_subquery()
        .label(name)
        for name, column in (
            ("conversation_account_id", _CONVERSATIONS.c.account_id),
            ("conversation_customer_id", _CONVERSATIONS.c.customer_id),
            ("conversation_read_at", _CONVERSATIONS.c.customer_read_at),
        )
    ),
    HAS_REACTIONS,
)
# An API send marked sent (attach_mid), returning what its event's snapshot reads.
_MARK_SENT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(
        mid=bindparam("sent_mid"),
        status="sent",
        sent_at=func.coalesce(bindparam("echo_sent_at", type_=UTCDateTime()), _TABLE.c.sent_at),
    )
    .returning(*_SNAPSHOT_COLUMNS)
)
_WITH_CONVERSATION = select(*_SNAPSHOT_COLUMNS).where(
    MESSAGES.c.mid.in_(bindparam("mids", expanding=True))
)
_WITH_CONVERSATION_BY_ID = select(*_SNAPSHOT_COLUMNS).where(MESSAGES.c.id == bindparam("row_id"))


def with_conversation(session: Session, mids: list[str]) -> dict[str, Row[Any]]:
    """These messages by mid, each with its conversation's account, customer and read
    watermark (`conversation_*` columns) and whether a reaction stands on it
    (`has_reactions`): what an event's snapshot needs."""
    if not mids:
        return {}
    rows = session.connection().execute(_WITH_CONVERSATION, {"mids": mids}).all()
    return {row._mapping["mid"]: row for row in rows}


def with_conversation_by_id(session: Session, row_id: int) -> Row[Any] | None:
    """One message by its row id, like `with_conversation`."""
    return session.connection().execute(_WITH_CONVERSATION_BY_ID, {"row_id": row_id}).first()


def newer_in_conversation(session: Session, *, conversation_id: int, sent_at: datetime) -> int:
    """How many delivered messages of the conversation are newer than `sent_at` (Meta gives
    content, and fresh media URLs, only for a conversation's 20 newest)."""
    newer = (
        select(func.count())
        .select_from(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.sent_at > sent_at,
            Message.mid.is_not(None),
        )
    )
    return session.scalar(newer) or 0
