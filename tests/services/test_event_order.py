"""Property: a conversation's events, shuffled, duplicated and batched at random into
deliveries, end in exactly the state of the same events applied one by one in time order."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Account, Conversation, Message, Reaction, User
from app.sandbox import webhooks
from app.services.intake import apply_delivery
from tests.conftest import Databases
from tests.helpers import serve

ACCOUNT = "17841400123456789"
CUSTOMER = "1187429836452190"
START_MS = 1745923800000
REACTIONS = ["love", "like", "laugh", "wow"]


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The messaging items of one conversation, each at its own millisecond, in time order."""
    clock = iter(range(START_MS, START_MS + 10**7, 1000))
    items: list[dict[str, Any]] = []
    outbound_mids: list[str] = []
    for number in range(draw(st.integers(min_value=1, max_value=5))):
        mid = f"mid-{number}"
        outbound = draw(st.booleans())
        common = {
            "account_id": ACCOUNT,
            "customer_id": CUSTOMER,
            "mid": mid,
            "timestamp_ms": next(clock),
        }
        content = draw(st.sampled_from(["text", "image", "unsupported"]))
        if outbound:
            outbound_mids.append(mid)
            text = None if content == "image" else f"reply {number}"
            attachments = (
                [{"type": "image", "payload": {"url": f"https://cdn.test/{number}"}}]
                if content == "image"
                else None
            )
            items.append(webhooks.echo_item(**common, text=text, attachments=attachments))
        elif content == "unsupported":
            items.append(webhooks.message_item(**common, is_unsupported=True))
        elif content == "image":
            attachments = [{"type": "image", "payload": {"url": f"https://cdn.test/{number}"}}]
            items.append(webhooks.message_item(**common, attachments=attachments))
        else:
            items.append(webhooks.message_item(**common, text=f"question {number}"))
        if not outbound:
            for edit in range(1, draw(st.integers(min_value=0, max_value=2)) + 1):
                items.append(
                    webhooks.edit_item(
                        account_id=ACCOUNT,
                        customer_id=CUSTOMER,
                        mid=mid,
                        timestamp_ms=next(clock),
                        text=f"question {number} v{edit}",
                        num_edit=edit,
                    )
                )
            if draw(st.booleans()):
                items.append(
                    webhooks.unsend_item(
                        account_id=ACCOUNT, customer_id=CUSTOMER, mid=mid, timestamp_ms=next(clock)
                    )
                )
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            reacting = draw(st.booleans())
            items.append(
                webhooks.reaction_item(
                    account_id=ACCOUNT,
                    customer_id=CUSTOMER,
                    mid=mid,
                    timestamp_ms=next(clock),
                    action="react" if reacting else "unreact",
                    reaction=draw(st.sampled_from(REACTIONS)) if reacting else None,
                )
            )
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        if outbound_mids:
            items.append(
                webhooks.read_item(
                    account_id=ACCOUNT,
                    customer_id=CUSTOMER,
                    timestamp_ms=next(clock),
                    mid=draw(st.sampled_from(outbound_mids)),
                )
            )
    for number in range(draw(st.integers(min_value=0, max_value=2))):
        items.append(
            webhooks.postback_item(
                account_id=ACCOUNT,
                customer_id=CUSTOMER,
                timestamp_ms=next(clock),
                mid=f"postback-{number}",
                title=f"Option {number}",
                payload=f"OPTION_{number}",
            )
        )
    for number in range(draw(st.integers(min_value=0, max_value=2))):
        items.append(
            webhooks.referral_item(
                account_id=ACCOUNT,
                customer_id=CUSTOMER,
                timestamp_ms=next(clock),
                referral={
                    "ref": f"campaign-{number}",
                    "source": "SHORTLINK",
                    "type": "OPEN_THREAD",
                },
            )
        )
    return items


@st.composite
def arrivals(draw: st.DrawFn, items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The same items as Meta may deliver them: any order, some twice, batched at random."""
    repeated = items + draw(st.lists(st.sampled_from(items), max_size=len(items)))
    shuffled = draw(st.permutations(repeated))
    batches: list[list[dict[str, Any]]] = []
    while shuffled:
        size = draw(st.integers(min_value=1, max_value=len(shuffled)))
        batches.append(shuffled[:size])
        shuffled = shuffled[size:]
    return batches


@contextmanager
def session_on(url: str) -> Iterator[Session]:
    engine = create_engine(url)
    try:
        with sessionmaker(bind=engine, expire_on_commit=False)() as session:
            yield session
    finally:
        engine.dispose()


def apply_all(url: str, batches: list[list[dict[str, Any]]]) -> None:
    with session_on(url) as session:
        if session.get(Account, ACCOUNT) is None:
            serve(session, ACCOUNT)  # intake applies only the entries of served accounts
        for batch in batches:
            outcome = apply_delivery(session, webhooks.delivery(account_id=ACCOUNT, items=batch))
            assert outcome.failures == []
            session.commit()


def state(url: str) -> dict[str, Any]:
    """Everything the events decide (not ids or bookkeeping times)."""
    with session_on(url) as session:
        return {
            "messages": sorted(
                (
                    m.mid,
                    m.direction,
                    m.sender_id,
                    m.recipient_id,
                    m.text,
                    m.attachments,
                    m.reply_to,
                    m.postback_payload,
                    m.is_deleted,
                    m.deleted_at,
                    m.is_unsupported,
                    m.edit_count,
                    m.edited_at,
                    m.sent_at,
                    m.source,
                    m.status,
                    m.is_placeholder,
                )
                for m in session.scalars(select(Message))
            ),
            "conversations": [
                (
                    c.account_id,
                    c.customer_id,
                    c.last_message_at,
                    c.last_inbound_at,
                    c.customer_read_at,
                    c.customer_read_mid,
                    c.last_referral,
                    c.last_referral_at,
                )
                for c in session.scalars(select(Conversation))
            ],
            "reactions": sorted(
                (r.mid, r.user_id, r.reaction, r.emoji, r.reacted_at)
                for r in session.scalars(select(Reaction))
            ),
            "users": sorted((u.id, u.profile_status) for u in session.scalars(select(User))),
        }


@pytest.mark.slow
@pytest.mark.timeout(300)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_order_any_duplicates_any_batching_ends_in_the_in_order_state(
    databases: Databases, data: st.DataObject
) -> None:
    items = data.draw(conversations(), label="conversation")
    batches = data.draw(arrivals(items), label="arrival")
    in_order, shuffled = databases.new(), databases.new()

    apply_all(in_order, [[item] for item in items])
    apply_all(shuffled, batches)

    assert state(shuffled) == state(in_order)
