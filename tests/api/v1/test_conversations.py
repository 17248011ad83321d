"""GET /api/v1/conversations, /conversations/{id}, /conversations/{id}/messages, /messages/{mid}."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Conversation, Message
from app.sandbox import webhooks
from tests.api.v1.conftest import START_MS, store_thread
from tests.helpers import (
    ACCOUNT_ID,
    CUSTOMER_ID,
    ServiceClient,
    StatementCounter,
    example,
    example_bytes,
)
from tests.stack import SharedService


def at(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


# --- the inbox -----------------------------------------------------------------------------------


def test_conversation_shows_customer_last_message_window_and_unread(
    api: ServiceClient, anna: dict
) -> None:
    response = api.get(f"/api/v1/conversations/{anna['id']}")

    assert response.status_code == 200
    body = response.json()
    assert body["account_id"] == ACCOUNT_ID
    assert body["customer"] == {
        "id": anna["id"],
        "username": "anna_k",
        "name": "Anna K",
        "profile_pic": "https://cdn.test/anna.jpg",
    }
    assert body["last_message"]["text"] == "Hi! Do you ship to Berlin?"
    assert body["last_message"]["direction"] == "inbound"
    inbound_at = datetime.fromisoformat(body["last_inbound_at"])
    assert datetime.fromisoformat(body["can_reply_until"]) == inbound_at + timedelta(hours=24)
    assert datetime.fromisoformat(body["human_agent_until"]) == inbound_at + timedelta(days=7)
    assert body["unread_count"] == 1


def test_unread_counts_customer_messages_after_the_last_reply(api: ServiceClient) -> None:
    customer = "1500000000000001"
    ids = {"account_id": ACCOUNT_ID, "customer_id": customer}
    items = [
        webhooks.message_item(**ids, mid="a", timestamp_ms=START_MS, text="one"),
        webhooks.echo_item(**ids, mid="b", timestamp_ms=START_MS + 1000, text="answer"),
        webhooks.message_item(**ids, mid="c", timestamp_ms=START_MS + 2000, text="two"),
        webhooks.message_item(**ids, mid="d", timestamp_ms=START_MS + 3000, text="three"),
        webhooks.unsend_item(**ids, mid="d", timestamp_ms=START_MS + 4000),
    ]
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=items)).status_code == 200

    body = api.get(f"/api/v1/conversations/{customer}").json()

    assert body["unread_count"] == 1  # "two" (the unsent "three" does not count)
    assert body["last_message"] == {
        "mid": "d",
        "direction": "inbound",
        "text": "[deleted]",
        "sent_at": at(START_MS + 3000),
    }


def test_inbox_is_newest_activity_first_and_pages_with_a_cursor(api: ServiceClient) -> None:
    customers = [f"15000000000000{n:02}" for n in range(7)]
    for order, customer in enumerate(customers):
        ids = {"account_id": ACCOUNT_ID, "customer_id": customer}
        item = webhooks.message_item(
            **ids, mid=f"m{order}", timestamp_ms=START_MS + order * 1000, text="hi"
        )
        assert (
            api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200
        )

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/conversations", params=params).json()
        seen += [c["customer"]["id"] for c in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(customers))
    assert pages == 3


def test_a_new_message_moves_its_conversation_to_the_top(api: ServiceClient) -> None:
    for order, customer in enumerate(["1500000000000001", "1500000000000002"]):
        ids = {"account_id": ACCOUNT_ID, "customer_id": customer}
        item = webhooks.message_item(
            **ids, mid=f"m{order}", timestamp_ms=START_MS + order, text="hi"
        )
        api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item]))
    ids = {"account_id": ACCOUNT_ID, "customer_id": "1500000000000001"}
    later = webhooks.message_item(**ids, mid="m-late", timestamp_ms=START_MS + 9000, text="again")
    api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[later]))

    order = [c["customer"]["id"] for c in api.get("/api/v1/conversations").json()["data"]]

    assert order == ["1500000000000001", "1500000000000002"]


def test_the_inbox_costs_the_same_statements_for_one_or_many_conversations(
    service: SharedService, api: ServiceClient
) -> None:
    def add(customer: str, number: int) -> None:
        ids = {"account_id": ACCOUNT_ID, "customer_id": customer}
        items = [
            webhooks.message_item(
                **ids, mid=f"{customer}-{n}", timestamp_ms=START_MS + number * 10 + n, text="x"
            )
            for n in range(3)
        ]
        assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=items)).status_code == 200

    add("1600000000000000", 0)
    with StatementCounter(service.app.state.engine) as one:
        first = api.get("/api/v1/conversations")
    for number in range(1, 25):
        add(f"16000000000000{number:02}", number)
    with StatementCounter(service.app.state.engine) as many:
        page = api.get("/api/v1/conversations", params={"limit": 20})

    assert first.status_code == page.status_code == 200
    assert [c["customer"]["id"] for c in first.json()["data"]] == ["1600000000000000"]
    newest_first = [f"16000000000000{number:02}" for number in range(24, 4, -1)]
    assert [c["customer"]["id"] for c in page.json()["data"]] == newest_first
    assert {c["last_message"]["mid"] for c in page.json()["data"]} == {
        f"{customer}-2" for customer in newest_first
    }
    assert len(many.statements) == len(one.statements) <= 3


def test_unknown_conversation_is_a_404(api: ServiceClient) -> None:
    response = api.get("/api/v1/conversations/1999999999999999")

    assert response.status_code == 404
    assert response.json()["code"] == "conversation_not_found"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/conversations", {"limit": 0}),
        ("/api/v1/conversations", {"limit": 201}),
        ("/api/v1/conversations", {"cursor": "not-a-cursor"}),
        ("/api/v1/conversations/abc", {}),
        ("/api/v1/conversations/1500000000000001/messages", {"before": "%%%"}),
    ],
    ids=["limit-0", "limit-201", "cursor", "user-id", "before"],
)
def test_bad_parameters_are_422_naming_them(
    service_in_process: TestClient, path: str, params: dict
) -> None:
    response = service_in_process.get(path, params=params)

    assert response.status_code == 422
    assert response.json()["code"] in {"validation_error", "invalid_cursor"}


# --- a thread's messages ---------------------------------------------------------------------


def test_messages_carry_everything_the_events_stored(api: ServiceClient) -> None:
    for name in [
        "echo_text",
        "reply_to_message",
        "reaction_react",
        "seen",
        "image",
        "unsend_is_deleted",
    ]:
        assert api.deliver(example_bytes(name)).status_code == 200
    customer = example("text")["entry"][0]["messaging"][0]["sender"]["id"]

    page = api.get(f"/api/v1/conversations/{customer}/messages").json()

    by_mid = {m["mid"]: m for m in page["data"]}
    echo = by_mid[example("echo_text")["entry"][0]["messaging"][0]["message"]["mid"]]
    assert echo["direction"] == "outbound"
    assert echo["status"] == "sent"
    assert echo["read"] is True  # seen.json points at it
    assert echo["reactions"] == [
        {
            "user_id": customer,
            "reaction": "love",
            "emoji": "\u2764\ufe0f",
            "reacted_at": at(1745923829000),
        }
    ]
    reply = by_mid[example("reply_to_message")["entry"][0]["messaging"][0]["message"]["mid"]]
    assert reply["reply_to"] == {"mid": echo["mid"]}
    assert (reply["status"], reply["read"], reply["error"]) == (None, None, None)
    photo = by_mid[example("image")["entry"][0]["messaging"][0]["message"]["mid"]]
    assert (photo["is_deleted"], photo["attachments"], photo["text"]) == (True, None, None)
    assert [m["sent_at"] for m in page["data"]] == sorted(
        (m["sent_at"] for m in page["data"]), reverse=True
    )


def test_get_one_message_by_mid(api: ServiceClient) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200
    assert api.deliver(example_bytes("message_edit")).status_code == 200
    mid = example("text")["entry"][0]["messaging"][0]["message"]["mid"]

    response = api.get(f"/api/v1/messages/{mid}")

    assert response.status_code == 200
    body = response.json()
    assert (body["mid"], body["text"], body["edit_count"]) == (mid, "Hi! Do you ship to Munich?", 1)
    assert body["edited_at"] == at(1745923828000)


def test_unknown_message_is_a_404(api: ServiceClient) -> None:
    response = api.get("/api/v1/messages/aWdf-unknown")

    assert response.status_code == 404
    assert response.json()["code"] == "message_not_found"


def test_messages_of_an_unknown_conversation_are_a_404(api: ServiceClient) -> None:
    response = api.get("/api/v1/conversations/1999999999999999/messages")

    assert response.status_code == 404
    assert response.json()["code"] == "conversation_not_found"


def test_before_and_after_together_are_a_422(api: ServiceClient) -> None:
    mids = store_thread(api, customer_id="1500000000000001", count=3)
    page = get_page(api, "1500000000000001", limit=1)
    assert (mids_of(page), page["has_older"]) == ([mids[-1]], True)  # two valid cursors

    response = api.get(
        "/api/v1/conversations/1500000000000001/messages",
        params={"before": page["before"], "after": page["after"]},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "conflicting_cursors"


def get_page(api: ServiceClient, customer: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/api/v1/conversations/{customer}/messages", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def mids_of(page: dict[str, Any]) -> list[str]:
    return [m["mid"] for m in page["data"]]


def test_a_1000_message_thread_walks_back_and_forth_without_gaps_or_repeats(
    api: ServiceClient,
) -> None:
    customer = "1500000000000001"
    mids = store_thread(api, customer_id=customer, count=1000)

    page = get_page(api, customer, limit=64)
    assert page["has_newer"] is False
    backwards = mids_of(page)
    while page["has_older"]:
        page = get_page(api, customer, limit=64, before=page["before"])
        assert page["has_newer"] is True
        backwards += mids_of(page)
    assert backwards == list(reversed(mids))

    forwards = list(reversed(mids_of(page)))  # from the oldest page, forwards with `after`
    while page["has_newer"]:
        page = get_page(api, customer, limit=64, after=page["after"])
        assert page["has_older"] is True
        forwards += list(reversed(mids_of(page)))
    assert forwards == mids


def test_pages_stay_whole_while_new_messages_arrive(api: ServiceClient) -> None:
    customer = "1500000000000001"
    mids = store_thread(api, customer_id=customer, count=300)
    later: list[str] = []

    page = get_page(api, customer, limit=50)
    newest_cursor = page["after"]
    seen = mids_of(page)
    round_number = 0
    while page["has_older"]:
        # New messages arrive between pages (newer than everything stored).
        later += store_thread(
            api,
            customer_id=customer,
            count=7,
            start_ms=START_MS + 10**7 + round_number * 10**5,
            prefix=f"new{round_number}",
        )
        round_number += 1
        page = get_page(api, customer, limit=50, before=page["before"])
        seen += mids_of(page)

    assert seen == list(reversed(mids))
    # Polling forwards from the first page's newest message finds exactly the new ones.
    polled: list[str] = []
    cursor = newest_cursor
    while True:
        forward = get_page(api, customer, limit=10, after=cursor)
        polled += list(reversed(mids_of(forward)))
        if not forward["has_newer"]:
            break
        cursor = forward["after"]
    assert polled == later


def test_every_page_shows_exactly_its_messages_reactions(api: ServiceClient) -> None:
    customer = "1500000000000002"
    mids = store_thread(api, customer_id=customer, count=7)
    items = [
        webhooks.reaction_item(
            customer_id=customer,
            account_id=ACCOUNT_ID,
            mid=mid,
            timestamp_ms=START_MS + 100_000 + number,
            reaction="love" if number % 2 else "like",
        )
        for number, mid in enumerate(mids)
        if mid != mids[3]  # one message without a reaction
    ]
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=items)).status_code == 200

    seen: dict[str, list[str]] = {}
    page = get_page(api, customer, limit=2)
    while True:
        for message in page["data"]:
            seen[message["mid"]] = [r["reaction"] for r in message["reactions"]]
        if not page["has_older"]:
            break
        page = get_page(api, customer, limit=2, before=page["before"])
    forward = get_page(api, customer, limit=3, after=page["before"])  # after the oldest

    expected = {
        mid: [] if mid == mids[3] else ["love" if number % 2 else "like"]
        for number, mid in enumerate(mids)
    }
    assert seen == expected
    assert {m["mid"]: [r["reaction"] for r in m["reactions"]] for m in forward["data"]} == {
        mid: expected[mid] for mid in mids[1:4]
    }


def test_a_page_reads_reactions_only_when_one_of_its_messages_has_one(
    service: SharedService, api: ServiceClient
) -> None:
    customer = "1500000000000003"
    mids = store_thread(api, customer_id=customer, count=4)

    def reactions_read() -> list[str]:
        with StatementCounter(service.app.state.engine) as counted:
            get_page(api, customer, limit=2)  # the two newest
        return [s for s in counted.statements if s.startswith("SELECT reactions.")]

    assert reactions_read() == []
    react = webhooks.reaction_item(
        customer_id=customer,
        account_id=ACCOUNT_ID,
        mid=mids[3],
        timestamp_ms=START_MS + 9_000,
        reaction="love",
    )
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[react])).status_code == 200
    assert len(reactions_read()) == 1
    [newest, older] = get_page(api, customer, limit=2)["data"]
    assert [r["reaction"] for r in newest["reactions"]] == ["love"]
    assert older["reactions"] == []


def test_a_page_costs_the_same_statements_whatever_the_history(
    service: SharedService, api: ServiceClient
) -> None:
    customer = "1500000000000001"
    mids = store_thread(api, customer_id=customer, count=30)
    with StatementCounter(service.app.state.engine) as short:
        short_page = get_page(api, customer, limit=20)
    mids += store_thread(
        api, customer_id=customer, count=600, start_ms=START_MS + 10**6, prefix="more"
    )
    with StatementCounter(service.app.state.engine) as long:
        long_page = get_page(api, customer, limit=20)

    assert mids_of(short_page) == list(reversed(mids[10:30]))
    assert mids_of(long_page) == list(reversed(mids[-20:]))
    assert (long_page["has_older"], long_page["has_newer"]) == (True, False)
    assert len(long.statements) == len(short.statements) <= 3
    assert all(
        "LIMIT" in s for s in long.statements if "FROM messages" in s and "reactions" not in s
    )


def test_a_referral_in_an_existing_thread_is_shown_on_the_conversation(
    api: ServiceClient,
) -> None:
    assert api.deliver(example("text")).status_code == 200
    before = api.get(f"/api/v1/conversations/{CUSTOMER_ID}").json()
    assert api.deliver(example("referral_igme_existing_thread")).status_code == 200

    after = api.get(f"/api/v1/conversations/{CUSTOMER_ID}").json()
    [listed] = api.get("/api/v1/conversations").json()["data"]

    assert before["last_referral"] is None
    assert after["last_referral"] == {
        "ref": "spring_sale_2025",
        "source": "SHORTLINK",
        "type": "OPEN_THREAD",
        "ad_id": None,
        "at": "2025-04-29T10:50:33Z",
    }
    assert listed["last_referral"] == after["last_referral"]


def test_messages_sharing_a_timestamp_page_without_gaps_or_repeats(
    api: ServiceClient, db: Session
) -> None:
    customer = "1500000000000003"
    ids = {"account_id": ACCOUNT_ID, "customer_id": customer}
    # Thirty messages, ten at each of three instants: pages of four end inside a group.
    items = [
        webhooks.message_item(
            **ids, mid=f"same-{n:02}", timestamp_ms=START_MS + (n // 10) * 1000, text=f"m{n}"
        )
        for n in range(30)
    ]
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=items)).status_code == 200
    stored = db.scalars(select(Message).order_by(Message.sent_at, Message.id)).all()
    assert len({message.sent_at for message in stored}) == 3
    in_order = [message.mid for message in stored]  # time, then row: the order pages keep

    page = get_page(api, customer, limit=4)
    backwards = mids_of(page)
    while page["has_older"]:
        page = get_page(api, customer, limit=4, before=page["before"])
        backwards += mids_of(page)
    forwards = list(reversed(mids_of(page)))
    while page["has_newer"]:
        page = get_page(api, customer, limit=4, after=page["after"])
        forwards += list(reversed(mids_of(page)))

    assert backwards == list(reversed(in_order))
    assert forwards == in_order


def test_conversations_with_the_same_last_activity_page_without_gaps_or_repeats(
    api: ServiceClient, db: Session
) -> None:
    customers = [f"15000000000001{n:02}" for n in range(7)]
    items = [
        webhooks.message_item(
            account_id=ACCOUNT_ID,
            customer_id=customer,
            mid=f"c{n}",
            timestamp_ms=START_MS,
            text="hi",
        )
        for n, customer in enumerate(customers)
    ]
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=items)).status_code == 200
    # The order the inbox promises: last activity, then row. Each thread has one message,
    # from its customer.
    rows = db.scalars(
        select(Conversation.id).order_by(
            Conversation.last_message_at.desc(), Conversation.id.desc()
        )
    ).all()
    customer_of = {m.conversation_id: m.sender_id for m in db.scalars(select(Message))}
    newest_first = [customer_of[row] for row in rows]

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = api.get("/api/v1/conversations", params=params)
        assert page.status_code == 200, page.text
        seen += [c["customer"]["id"] for c in page.json()["data"]]
        if page.json()["next_cursor"] is None:
            break
        params["cursor"] = page.json()["next_cursor"]

    assert sorted(seen) == sorted(customers)
    assert seen == newest_first
