"""`GET /messages`: the last messages of a conversation, README sample 4's shape."""

import pytest
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from app.models import Message
from app.sandbox.server import BackgroundServer
from tests.conftest import StartService
from tests.helpers import (
    ACCOUNT_ID,
    CUSTOMER_ID,
    ServiceClient,
    customer_writes,
    example_bytes,
    graph_calls,
    new_customer,
    text_message,
    wait_for_profiles,
)

BUSINESS_USERNAME = "sandbox_business"  # what the sandbox's /me answers


@pytest.fixture
def anna(meta: ServiceClient, service: BackgroundServer) -> dict:
    """A customer of the sandbox; the service runs, so what she writes is stored."""
    return new_customer(meta, username="anna_k", name="Anna K")


def test_history_is_oldest_first_with_usernames_from_the_profiles(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    customer_writes(meta, anna["id"], "Hi! Do you ship to Berlin?")
    wait_for_profiles(db, anna["id"], ACCOUNT_ID)
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
            "text": "Hi! Do you ship to Berlin?",
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
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    customer_writes(meta, anna["id"], "hello")
    wait_for_profiles(db, anna["id"], ACCOUNT_ID)
    calls = graph_calls(meta)

    for _ in range(3):
        assert api.get("/messages", params={"user_id": anna["id"]}).status_code == 200

    assert graph_calls(meta) == calls


def test_before_the_profiles_are_fetched_the_ids_stand_in(
    start_service: StartService, meta: ServiceClient, db: Session
) -> None:
    server = start_service(profile_worker_enabled=False)
    customer = new_customer(meta, username="zoe")
    customer_writes(meta, customer["id"], "hi")

    with ServiceClient(server.url) as client:
        history = client.get("/messages", params={"user_id": customer["id"]}).json()

    assert history == [
        {"sender_username": customer["id"], "recipient_username": ACCOUNT_ID, "text": "hi"}
    ]
    assert graph_calls(meta) == []


def test_default_count_is_50_and_messages_count_limits_it(
    api: ServiceClient, meta: ServiceClient
) -> None:
    for number in range(60):
        payload = text_message(
            mid=f"m-{number:03}", text=f"message {number}", timestamp=1745923812000 + number
        )
        assert api.deliver(payload).status_code == 200

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
def test_bad_parameters_are_422(api: ServiceClient, params: dict) -> None:
    response = api.get("/messages", params=params)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_the_cost_of_a_read_does_not_grow_with_the_history(
    start_service: StartService, service: BackgroundServer, meta: ServiceClient, db: Session
) -> None:
    customer_writes(meta, new_customer(meta, id=CUSTOMER_ID, username="peter")["id"], "hi")
    wait_for_profiles(db, CUSTOMER_ID, ACCOUNT_ID)
    # A second process without the profile fetcher: only the reads' statements are counted.
    reader = start_service(profile_worker_enabled=False)
    api = ServiceClient(reader.url)
    statements: list[str] = []
    engine = reader.app.state.engine

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    for number in range(5):
        api.deliver(text_message(mid=f"short-{number}", timestamp=1745923812000 + number))

    event.listen(engine, "before_cursor_execute", record)
    try:
        api.get("/messages", params={"user_id": CUSTOMER_ID})
        short_history = list(statements)
        for number in range(300):
            api.deliver(text_message(mid=f"long-{number}", timestamp=1745923900000 + number))
        statements.clear()
        api.get("/messages", params={"user_id": CUSTOMER_ID, "messages_count": 50})
        long_history = list(statements)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert len(long_history) == len(short_history)
    history_query = next(s for s in long_history if "FROM messages" in s)
    assert "LIMIT" in history_query


def test_a_customer_of_another_business_account_is_served_too(api: ServiceClient) -> None:
    # One Meta app can deliver for several accounts; every conversation is stored and readable.
    assert api.deliver(example_bytes("two_entries_one_delivery")).status_code == 200

    response = api.get("/messages", params={"user_id": "7731902284650017"})

    assert response.status_code == 200
    assert [m["text"] for m in response.json()] == ["Hello, I want to book a table for 4"]
