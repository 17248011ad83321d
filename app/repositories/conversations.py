"""SQL for `conversations`: one per (business account, customer)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, literal, select, tuple_
from sqlalchemy.orm import Session

from app.models import Account, Conversation, User, UTCDateTime, utcnow
from app.repositories.base import Position, rows_upsert
from app.repositories.rows import ConversationClocks
from app.repositories.rules import CONVERSATION_CLOCKS


@dataclass(frozen=True)
class Upserted:
    id: int
    created: bool  # the conversation is new


def upsert_many(
    session: Session, changes: Iterable[ConversationClocks]
) -> dict[tuple[str, str], Upserted]:
    """Create the conversations that are new and move their clocks forward; by
    (account_id, customer_id), their ids and whether they are new. One statement per
    ROWS_PER_STATEMENT conversations.

    Every clock only moves forward, and what travels with a clock (the read mid, the
    referral) changes only with it (CONVERSATION_CLOCKS), so events applied in any order end
    in the same state. Each (account_id, customer_id) at most once.
    """
    now = utcnow()
    returned = rows_upsert(
        session,
        key="conversations.upsert",
        table=Conversation.__table__,
        # One order for every writer, so concurrent deliveries lock rows alike (no deadlock).
        rows=sorted(changes, key=lambda change: (change.account_id, change.customer_id)),
        same={"created_at": now, "updated_at": now},
        finish=_advance_clocks,
    )
    return {
        (account_id, customer_id): Upserted(id=row_id, created=bool(created))
        for account_id, customer_id, row_id, created in returned
    }


def _advance_clocks(insert: Any) -> Any:
    stored, incoming = Conversation.__table__.c, insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[stored.account_id, stored.customer_id],
        set_={
            **CONVERSATION_CLOCKS.sql_merged(stored, incoming),
            "updated_at": incoming.updated_at,
        },
    ).returning(
        stored.account_id,
        stored.customer_id,
        stored.id,
        # A row inserted now has created_at = updated_at; an updated one an older created_at.
        (stored.created_at == stored.updated_at).label("created"),
    )


def upsert(
    session: Session,
    *,
    account_id: str,
    customer_id: str,
    message_at: datetime | None = None,
    inbound_at: datetime | None = None,
) -> int:
    """One conversation: created if needed, clocks moved forward; its id."""
    clocks = ConversationClocks(
        account_id=account_id,
        customer_id=customer_id,
        last_message_at=message_at,
        last_inbound_at=inbound_at,
    )
    return upsert_many(session, [clocks])[(account_id, customer_id)].id


def has_account(session: Session, account_id: str) -> bool:
    """Whether any conversation belongs to this business account (it is not a customer)."""
    query = select(Conversation.id).where(Conversation.account_id == account_id).limit(1)
    return session.scalar(query) is not None


def customer_read_at(session: Session, *, conversation_id: int) -> datetime | None:
    """How far the customer has read the business's messages (None: not yet, or no such
    conversation)."""
    return session.connection().execute(_READ_AT, {"conversation_id": conversation_id}).scalar()


_READ_AT = select(Conversation.customer_read_at).where(
    Conversation.id == bindparam("conversation_id")
)


def latest_for_customer(session: Session, *, customer_id: str) -> Row[Any] | None:
    """The customer's most recently active conversation (a row of its columns, and its
    account's status as `account_status`: None when the account has no row).

    An IGSID is specific to one business account, so in practice there is exactly one.
    """
    return session.connection().execute(_LATEST_FOR_CUSTOMER, {"customer_id": customer_id}).first()


_LATEST_FOR_CUSTOMER = (
    select(Conversation.__table__, Account.status.label("account_status"))
    .outerjoin(Account, Account.id == Conversation.account_id)
    .where(Conversation.customer_id == bindparam("customer_id"))
    .order_by(Conversation.last_message_at.desc().nulls_last())
    .limit(1)
)


# An inbox row: the conversation's columns and its customer's cached profile.
_WITH_CUSTOMER = select(
    Conversation.__table__,
    User.username.label("customer_username"),
    User.name.label("customer_name"),
    User.profile_pic.label("customer_profile_pic"),
).outerjoin(User, User.id == Conversation.customer_id)


_INBOX = _WITH_CUSTOMER.where(Conversation.last_message_at.is_not(None))
_INBOX_ORDER = (Conversation.last_message_at.desc(), Conversation.id.desc())
_FIRST_PAGE = _INBOX.order_by(*_INBOX_ORDER).limit(bindparam("limit"))
_NEXT_PAGE = (
    _INBOX.where(
        tuple_(Conversation.last_message_at, Conversation.id)
        < tuple_(
            bindparam("after_at", type_=Conversation.__table__.c.last_message_at.type),
            bindparam("after_id"),
        )
    )
    .order_by(*_INBOX_ORDER)
    .limit(bindparam("limit"))
)
_CUSTOMERS_CONVERSATION = (
    _WITH_CUSTOMER.where(Conversation.customer_id == bindparam("customer_id"))
    .order_by(Conversation.last_message_at.desc().nulls_last())
    .limit(1)
)


def page(
    session: Session,
    *,
    limit: int,
    after: Position | None = None,
    account_id: str | None = None,
) -> Sequence[Row[Any]]:
    """Conversations with messages, newest activity first, from just after `after`; with
    their customers; of one business account when `account_id`. One statement, walking the
    (last_message_at, id) index."""
    if account_id is not None:
        return _account_page(session, limit=limit, after=after, account_id=account_id)
    if after is None:
        return session.connection().execute(_FIRST_PAGE, {"limit": limit}).all()
    parameters = {"limit": limit, "after_at": after.at, "after_id": after.id}
    return session.connection().execute(_NEXT_PAGE, parameters).all()


def _account_page(
    session: Session, *, limit: int, after: Position | None, account_id: str
) -> Sequence[Row[Any]]:
    query = _INBOX.where(Conversation.account_id == account_id)
    if after is not None:
        query = query.where(
            tuple_(Conversation.last_message_at, Conversation.id)
            < tuple_(literal(after.at, UTCDateTime()), literal(after.id))
        )
    return session.execute(query.order_by(*_INBOX_ORDER).limit(limit)).all()


def with_customer(session: Session, *, customer_id: str) -> Row[Any] | None:
    """The customer's conversation (see latest_for_customer) and their cached profile."""
    return (
        session.connection().execute(_CUSTOMERS_CONVERSATION, {"customer_id": customer_id}).first()
    )


def read_marks(
    session: Session, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], datetime | None]:
    """By (account_id, customer_id), how far each existing conversation's customer has read;
    the rows locked until the transaction ends (on PostgreSQL), in the order every writer
    takes them, so the read that moves the watermark is known to exactly one transaction."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    query = (
        select(Conversation.account_id, Conversation.customer_id, Conversation.customer_read_at)
        .where(tuple_(Conversation.account_id, Conversation.customer_id).in_(keys))
        .order_by(Conversation.account_id, Conversation.customer_id)
        .with_for_update()
    )
    return {
        (account_id, customer_id): read_at
        for account_id, customer_id, read_at in session.execute(query).all()
    }
