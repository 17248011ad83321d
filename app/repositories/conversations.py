"""SQL for `conversations`: one per (business account, customer)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, case, select, tuple_
from sqlalchemy.orm import Session

from app.models import Conversation, User, utcnow
from app.repositories.base import Position, later_of, rows_upsert


@dataclass
class ConversationClocks:
    """What events tell about one conversation: each clock only ever moves forward."""

    account_id: str
    customer_id: str
    message_at: datetime | None = None
    inbound_at: datetime | None = None
    read_at: datetime | None = None
    read_mid: str | None = None
    referral: dict[str, Any] | None = None
    referral_at: datetime | None = None

    def merge(self, other: "ConversationClocks") -> None:
        """Take the later of each clock (and what travels with it), as the database does."""
        self.message_at = _later(self.message_at, other.message_at)
        self.inbound_at = _later(self.inbound_at, other.inbound_at)
        if _is_later(other.read_at, self.read_at):
            self.read_at, self.read_mid = other.read_at, other.read_mid
        if _is_later(other.referral_at, self.referral_at):
            self.referral_at, self.referral = other.referral_at, other.referral


def _is_later(candidate: datetime | None, current: datetime | None) -> bool:
    return candidate is not None and (current is None or candidate > current)


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    return second if _is_later(second, first) else first


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
    referral) changes only with it, so events applied in any order end in the same state.
    """
    now = utcnow()
    rows = [
        {
            "account_id": change.account_id,
            "customer_id": change.customer_id,
            "last_message_at": change.message_at,
            "last_inbound_at": change.inbound_at,
            "customer_read_at": change.read_at,
            "customer_read_mid": change.read_mid,
            "last_referral": change.referral,
            "last_referral_at": change.referral_at,
            "created_at": now,
            "updated_at": now,
        }
        # One order for every writer, so concurrent deliveries lock rows alike (no deadlock).
        for change in sorted(changes, key=lambda change: (change.account_id, change.customer_id))
    ]
    table = Conversation.__table__
    returned = rows_upsert(
        session, key="conversations.upsert", table=table, rows=rows, finish=_advance_clocks
    )
    return {
        (account_id, customer_id): Upserted(id=row_id, created=bool(created))
        for account_id, customer_id, row_id, created in returned
    }


def _advance_clocks(insert: Any) -> Any:
    table, incoming = Conversation.__table__, insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[table.c.account_id, table.c.customer_id],
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
            "updated_at": incoming.updated_at,
        },
    ).returning(
        table.c.account_id,
        table.c.customer_id,
        table.c.id,
        # A row inserted now has created_at = updated_at; an updated one an older created_at.
        (table.c.created_at == table.c.updated_at).label("created"),
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
        account_id=account_id, customer_id=customer_id, message_at=message_at, inbound_at=inbound_at
    )
    return upsert_many(session, [clocks])[(account_id, customer_id)].id


def _moves_forward(
    current: ColumnElement[Any], incoming: ColumnElement[Any]
) -> ColumnElement[bool]:
    return incoming.is_not(None) & (current.is_(None) | (incoming > current))


def window_of(session: Session, *, account_id: str, customer_id: str) -> Row[Any] | None:
    """The conversation's `id` and `last_inbound_at` (what a send checks), or None."""
    return (
        session.connection()
        .execute(_WINDOW_OF, {"account_id": account_id, "customer_id": customer_id})
        .first()
    )


_WINDOW_OF = select(Conversation.id, Conversation.last_inbound_at).where(
    Conversation.account_id == bindparam("account_id"),
    Conversation.customer_id == bindparam("customer_id"),
)


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
    """The customer's most recently active conversation (a row of its columns).

    An IGSID is specific to one business account, so in practice there is exactly one.
    """
    return session.connection().execute(_LATEST_FOR_CUSTOMER, {"customer_id": customer_id}).first()


_LATEST_FOR_CUSTOMER = (
    select(Conversation.__table__)
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


def page(session: Session, *, limit: int, after: Position | None = None) -> Sequence[Row[Any]]:
    """Conversations with messages, newest activity first, from just after `after`; with
    their customers. One statement, walking the (last_message_at, id) index."""
    if after is None:
        return session.connection().execute(_FIRST_PAGE, {"limit": limit}).all()
    parameters = {"limit": limit, "after_at": after.at, "after_id": after.id}
    return session.connection().execute(_NEXT_PAGE, parameters).all()


def with_customer(session: Session, *, customer_id: str) -> Row[Any] | None:
    """The customer's conversation (see latest_for_customer) and their cached profile."""
    return (
        session.connection().execute(_CUSTOMERS_CONVERSATION, {"customer_id": customer_id}).first()
    )
