"""Each merge rule is written once (app/repositories/rules.py) and read two ways: the intake
batch merges with it in Python, the upserts compare with it in SQL. They must agree: for any
two rows with the same key, in either order, the Python merge keeps exactly what the
database stores after writing one and then the other, and the second write changes the
stored row exactly when the rule says it wins."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Table, create_engine, select, text
from sqlalchemy.orm import Session

from app.models import Conversation, Message, Reaction
from app.repositories import conversations, messages, reactions
from app.repositories.rows import (
    ConversationClocks,
    EditRow,
    MessageRow,
    ReactionRow,
    UnsendRow,
)
from app.repositories.rules import (
    CONVERSATION_CLOCKS,
    FIRST_MESSAGE_STANDS,
    HIGHER_EDIT,
    LATER_UNSEND,
    LATEST_REACTION,
)
from tests.conftest import Databases

ACCOUNT = "17841400123456789"
CUSTOMER = "1187429836452190"
MID = "mid-1"
START = datetime(2025, 4, 29, 10, 50, tzinfo=UTC)

# Few distinct values, so that ties (the tie-breaks) come up often.
times = st.sampled_from([START + timedelta(milliseconds=n) for n in (0, 1, 1000)])
maybe_times = st.none() | times
# Mixed case, accents and emoji: Python orders text by code point, and so must the SQL.
names = st.sampled_from(["love", "Love", "like", "wow", "é", "z", "😀", "❤️"])
texts = st.none() | st.sampled_from(["hello", "hello (edited)", "Hi"])

PAIRS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@st.composite
def heads(draw: st.DrawFn) -> dict[str, Any]:
    outbound = draw(st.booleans())
    sides = (ACCOUNT, CUSTOMER) if outbound else (CUSTOMER, ACCOUNT)
    return {
        "mid": MID,
        "direction": "outbound" if outbound else "inbound",
        "sender_id": sides[0],
        "recipient_id": sides[1],
        "sent_at": draw(times),
        "created_at": draw(times),
        "source": "echo" if outbound else "webhook",
        "status": "sent" if outbound else None,
    }


@st.composite
def message_rows(draw: st.DrawFn) -> MessageRow:
    return MessageRow(
        **draw(heads()),
        text=draw(texts),
        attachments=draw(st.none() | st.just([{"type": "image", "payload": {"url": "u"}}])),
        reply_to=draw(st.none() | st.just({"mid": "mid-0"})),
        quick_reply_payload=draw(st.none() | st.just("YES")),
        postback_payload=None,
        referral=None,
        is_unsupported=draw(st.booleans()),
    )


@st.composite
def edit_rows(draw: st.DrawFn) -> EditRow:
    return EditRow(
        **draw(heads()),
        text=draw(texts),
        edit_count=draw(st.integers(min_value=0, max_value=2)),
        edited_at=draw(times),
    )


@st.composite
def unsend_rows(draw: st.DrawFn) -> UnsendRow:
    return UnsendRow(**draw(heads()), deleted_at=draw(times))


@st.composite
def reaction_rows(draw: st.DrawFn) -> ReactionRow:
    reacting = draw(st.booleans())
    return ReactionRow(
        mid=MID,
        user_id=CUSTOMER,
        reaction=draw(names) if reacting else None,
        emoji=draw(st.none() | names) if reacting else None,
        reacted_at=draw(times),
    )


@st.composite
def clocks(draw: st.DrawFn) -> ConversationClocks:
    return ConversationClocks(
        account_id=ACCOUNT,
        customer_id=CUSTOMER,
        last_message_at=draw(maybe_times),
        last_inbound_at=draw(maybe_times),
        customer_read_at=draw(maybe_times),
        customer_read_mid=draw(st.none() | st.sampled_from(["mid-1", "mid-2"])),
        last_referral=draw(st.none() | st.sampled_from([{"ref": "a"}, {"ref": "b"}])),
        last_referral_at=draw(maybe_times),
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_engine(database_url)
    yield made
    made.dispose()


Store = Callable[[Session, Sequence[Any]], set[Any]]


def write_both(
    engine: Engine, store: Store, first: Any, second: Any, *, table: Table
) -> tuple[Any, set[Any]]:
    """Write `first`, then `second`, in a transaction rolled back afterwards: the row stored
    (as the rows' type, its conversation_id left out) and what the second write changed."""
    row_type = type(first)
    columns = [field.name for field in fields(row_type)]
    with Session(engine) as session:
        if "conversation_id" in columns:  # messages: their conversation exists first
            conversation_id = conversations.upsert(
                session, account_id=ACCOUNT, customer_id=CUSTOMER
            )
            first = replace(first, conversation_id=conversation_id)
            second = replace(second, conversation_id=conversation_id)
        store(session, [first])
        changed = store(session, [second])
        stored = session.execute(select(table).where(table.c.mid == MID)).one()._mapping
    as_row = row_type(**{column: stored[column] for column in columns})
    return (
        replace(as_row, conversation_id=None) if "conversation_id" in columns else as_row,
        changed,
    )


@PAIRS
@given(pair=st.tuples(message_rows(), message_rows()))
def test_the_first_message_stands_in_python_and_in_sql(
    engine: Engine, pair: tuple[MessageRow, MessageRow]
) -> None:
    for first, second in (pair, pair[::-1]):
        stored, changed = write_both(
            engine, messages.store_messages, first, second, table=Message.__table__
        )
        assert stored == FIRST_MESSAGE_STANDS.merge(first, second) == first
        assert not changed


@PAIRS
@given(pair=st.tuples(edit_rows(), edit_rows()))
def test_the_higher_edit_count_wins_in_python_and_in_sql(
    engine: Engine, pair: tuple[EditRow, EditRow]
) -> None:
    for first, second in (pair, pair[::-1]):
        stored, changed = write_both(
            engine, messages.store_edits, first, second, table=Message.__table__
        )
        assert stored == HIGHER_EDIT.merge(first, second)
        assert changed == ({MID} if HIGHER_EDIT.wins(second, first) else set())


@PAIRS
@given(pair=st.tuples(unsend_rows(), unsend_rows()))
def test_the_later_unsend_wins_in_python_and_in_sql(
    engine: Engine, pair: tuple[UnsendRow, UnsendRow]
) -> None:
    for first, second in (pair, pair[::-1]):
        stored, changed = write_both(
            engine, messages.store_unsends, first, second, table=Message.__table__
        )
        assert stored == LATER_UNSEND.merge(first, second)
        assert changed == ({MID} if LATER_UNSEND.wins(second, first) else set())


@PAIRS
@given(pair=st.tuples(reaction_rows(), reaction_rows()))
def test_the_latest_reaction_wins_with_its_tie_breaks_in_python_and_in_sql(
    engine: Engine, pair: tuple[ReactionRow, ReactionRow]
) -> None:
    for first, second in (pair, pair[::-1]):
        stored, changed = write_both(
            engine, reactions.store_many, first, second, table=Reaction.__table__
        )
        assert stored == LATEST_REACTION.merge(first, second)
        wins = LATEST_REACTION.wins(second, first)
        assert changed == ({(MID, CUSTOMER)} if wins else set())


@PAIRS
@given(pair=st.tuples(clocks(), clocks()))
def test_conversation_clocks_only_move_forward_in_python_and_in_sql(
    engine: Engine, pair: tuple[ConversationClocks, ConversationClocks]
) -> None:
    table = Conversation.__table__
    for first, second in (pair, pair[::-1]):
        with Session(engine) as session:
            conversations.upsert_many(session, [first])
            conversations.upsert_many(session, [second])
            stored = session.execute(select(table)).one()._mapping
        fields_of = {field.name: stored[field.name] for field in fields(ConversationClocks)}
        assert ConversationClocks(**fields_of) == CONVERSATION_CLOCKS.merge(first, second)


def test_a_database_sorting_text_by_language_breaks_ties_as_python_does(
    engine: Engine, databases: Databases
) -> None:
    if databases.backend != "postgresql":
        pytest.skip("SQLite compares text by code point, as Python does")
    same_instant = {"mid": MID, "user_id": CUSTOMER, "emoji": None, "reacted_at": START}
    first = ReactionRow(**same_instant, reaction="Love")
    second = ReactionRow(**same_instant, reaction="like")  # "like" > "Love" by code point
    with Session(engine) as session:
        # English order would put "like" first: the rule must not follow it.
        session.execute(
            text('ALTER TABLE reactions ALTER COLUMN reaction TYPE VARCHAR(64) COLLATE "en-x-icu"')
        )
        reactions.store_many(session, [first])
        changed = reactions.store_many(session, [second])
        stored = session.scalars(select(Reaction.reaction)).one()

    assert LATEST_REACTION.wins(second, first)
    assert (stored, changed) == ("like", {(MID, CUSTOMER)})
