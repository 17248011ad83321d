"""`GET /messages`: the last messages of a conversation, README sample 4's shape."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import Message
from tests.conftest import ANNA_FIRST_WORDS
from tests.helpers import (
    ACCOUNT_ID,
    CUSTOMER_ID,
    ServiceClient,
    StatementCounter,
    customer_writes,
    example_bytes,
    graph_calls,
    messages_delivery,
    new_customer,
    serve_account,
    text_message,
    wait_for_profiles,
    wait_until,
)
from tests.stack import SharedService

BUSINESS_USERNAME = "sandbox_business"  # what the sandbox's /me answers


def test_history_is_oldest_first_with_usernames_from_the_profiles(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    customer_writes(meta, anna["id"], "And to Munich?")
    sent = api.post(
        "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "Yes, both."}}
    )
    assert sent.status_code == 200

    response = api.get("/messages", params={"user_id": anna["id"]})

    assert response.status_code == 200
    assert response.json() == [
        {
            "sender_username": "anna_k",
            "recipient_username": BUSINESS_USERNAME,
            "text": ANNA_FIRST_WORDS,
        },
        {
            "sender_username": "anna_k",
            "recipient_username": BUSINESS_USERNAME,
            "text": "And to Munich?",
        },
        {
            "sender_username": BUSINESS_USERNAME,
            "recipient_username": "anna_k",
            "text": "Yes, both.",
        },
    ]


def test_reads_never_call_the_graph_api(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    calls = graph_calls(meta)

    for _ in range(3):
        response = api.get("/messages", params={"user_id": anna["id"]})
        assert response.status_code == 200
        assert [m["text"] for m in response.json()] == [ANNA_FIRST_WORDS]

    assert graph_calls(meta) == calls


def test_before_the_profiles_are_fetched_the_ids_stand_in(
    quiet_service: SharedService, meta: ServiceClient
) -> None:
    customer = new_customer(meta, username="zoe")
    customer_writes(meta, customer["id"], "hi")

    with ServiceClient(quiet_service.url) as client:
        history = client.get("/messages", params={"user_id": customer["id"]}).json()

    assert history == [
        {"sender_username": customer["id"], "recipient_username": ACCOUNT_ID, "text": "hi"}
    ]
    assert graph_calls(meta) == []


def test_default_count_is_50_and_messages_count_limits_it(api: ServiceClient) -> None:
    texts = [f"message {number}" for number in range(60)]
    delivery = messages_delivery(customer_id=CUSTOMER_ID, texts=texts, start_ms=1745923812000)
    assert api.deliver(delivery).status_code == 200

    default = api.get("/messages", params={"user_id": CUSTOMER_ID}).json()
    three = api.get("/messages", params={"user_id": CUSTOMER_ID, "messages_count": 3}).json()

    assert [m["text"] for m in default] == [f"message {n}" for n in range(10, 60)]
    assert [m["text"] for m in three] == ["message 57", "message 58", "message 59"]


def test_order_follows_event_time_not_arrival(api: ServiceClient) -> None:
    assert (
        api.deliver(text_message(mid="m-late", text="second", timestamp=1745923813000)).status_code
        == 200
    )
    assert (
        api.deliver(text_message(mid="m-early", text="first", timestamp=1745923812000)).status_code
        == 200
    )

    texts = [m["text"] for m in api.get("/messages", params={"user_id": CUSTOMER_ID}).json()]

    assert texts == ["first", "second"]


def test_media_unsent_and_unsupported_messages_show_placeholders(api: ServiceClient) -> None:
    for name in [
        "multiple_attachments",
        "image",
        "unsend_is_deleted",
        "unsupported",
        "story_mention",
    ]:
        assert api.deliver(example_bytes(name)).status_code == 200

    texts = [m["text"] for m in api.get("/messages", params={"user_id": CUSTOMER_ID}).json()]

    # In event-time order: image (then unsent), multiple attachments, story mention, unsupported.
    assert texts == [
        "[deleted]",
        "[image, image, video]",
        "[story_mention]",
        "[unsupported message]",
    ]


def test_without_a_profile_the_id_stands_in_for_the_username(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    # The example customer is unknown to the sandbox: Instagram gives no profile for it.
    assert api.deliver(example_bytes("text")).status_code == 200
    wait_for_profiles(db, CUSTOMER_ID)

    response = api.get("/messages", params={"user_id": CUSTOMER_ID})

    assert response.status_code == 200
    assert response.json()[0]["sender_username"] == CUSTOMER_ID


def test_failed_sends_are_not_shown(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200
    assert api.deliver(example_bytes("echo_text")).status_code == 200
    db.execute(update(Message).where(Message.direction == "outbound").values(status="failed"))
    db.commit()

    texts = [m["text"] for m in api.get("/messages", params={"user_id": CUSTOMER_ID}).json()]

    assert texts == ["Hi! Do you ship to Berlin?"]


def test_a_user_without_messages_is_a_404(api: ServiceClient) -> None:
    response = api.get("/messages", params={"user_id": "1234567890123456"})

    assert response.status_code == 404
    assert response.json()["code"] == "messages_not_found"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"user_id": "abc"},
        {"user_id": "12 34"},
        {"user_id": CUSTOMER_ID, "messages_count": 0},
        {"user_id": CUSTOMER_ID, "messages_count": 1001},
        {"user_id": CUSTOMER_ID, "messages_count": "many"},
    ],
    ids=["missing", "letters", "space", "zero", "too-many", "not-a-number"],
)
def test_bad_parameters_are_422(service_in_process: TestClient, params: dict) -> None:
    response = service_in_process.get("/messages", params=params)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_the_cost_of_a_read_does_not_grow_with_the_history(
    service: SharedService, api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    customer_writes(meta, new_customer(meta, id=CUSTOMER_ID, username="peter")["id"], "hi")
    wait_for_profiles(db, CUSTOMER_ID, ACCOUNT_ID)
    service.pause_workers()  # only the reads' statements are counted
    short = [f"short {number}" for number in range(5)]
    delivery = messages_delivery(customer_id=CUSTOMER_ID, texts=short, start_ms=1745923812000)
    assert api.deliver(delivery).status_code == 200

    with StatementCounter(service.app.state.engine) as short_history:
        response = api.get("/messages", params={"user_id": CUSTOMER_ID})
    assert response.status_code == 200
    assert [m["text"] for m in response.json()] == [*short, "hi"]
    assert {m["sender_username"] for m in response.json()} == {"peter"}
    long = [f"long {number}" for number in range(300)]
    for start in range(0, 300, 100):
        delivery = messages_delivery(
            customer_id=CUSTOMER_ID,
            texts=long[start : start + 100],
            start_ms=1745923900000 + start,
            prefix=f"long-{start}",
        )
        assert api.deliver(delivery).status_code == 200
    with StatementCounter(service.app.state.engine) as long_history:
        response = api.get("/messages", params={"user_id": CUSTOMER_ID, "messages_count": 50})

    assert response.status_code == 200
    assert [m["text"] for m in response.json()] == [*long[-49:], "hi"]
    assert len(long_history.statements) == len(short_history.statements)
    history_query = next(s for s in long_history.statements if "FROM messages" in s)
    assert "LIMIT" in history_query


def test_a_customer_of_another_business_account_is_served_once_it_is_added(
    api: ServiceClient, meta: ServiceClient
) -> None:
    # One Meta app delivers for all its accounts; an account's entries wait until it is added.
    assert api.deliver(example_bytes("two_entries_one_delivery")).status_code == 200
    assert api.get("/messages", params={"user_id": "7731902284650017"}).status_code == 404

    serve_account(api, meta, "17841400987654321")
    response = api.get("/messages", params={"user_id": "7731902284650017"})

    assert response.status_code == 200
    assert [m["text"] for m in response.json()] == ["Hello, I want to book a table for 4"]


def test_history_pages_give_their_connection_back(
    service: SharedService, api: ServiceClient, anna: dict
) -> None:
    """The history routes open and close their session in one dependency each: every page,
    found or not, returns its connection to the pool."""
    service.pause_workers()
    pool = service.app.state.engine.pool
    for path, params in [
        ("/messages", {"user_id": anna["id"]}),
        ("/messages", {"user_id": "1000000000000001"}),  # 404: no messages
        (f"/api/v1/conversations/{anna['id']}/messages", {}),
        ("/api/v1/conversations/1000000000000001/messages", {}),  # 404
        (f"/api/v1/conversations/{anna['id']}", {}),
    ]:
        response = api.get(path, params=params)
        assert response.status_code in (200, 404), response.text
        wait_until(lambda: pool.checkedout() == 0, timeout=5, what=f"{path}'s connection back")
