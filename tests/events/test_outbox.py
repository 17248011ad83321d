"""The outbox: every change a consumer cares about writes an event in its own transaction,
with a snapshot of the object then; duplicates and rolled-back transactions write none. Read
through `GET /api/v1/events` (the feed) and checked against the stored rows."""

from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import Event
from app.sandbox import webhooks
from app.services.intake import apply_delivery
from tests.conftest import StartService
from tests.helpers import (
    ACCOUNT_ID,
    CUSTOMER_ID,
    ServiceClient,
    StatementCounter,
    add_fault,
    serve,
    text_message,
)

MS = 1745923800000
IDS = {"account_id": ACCOUNT_ID, "customer_id": CUSTOMER_ID}


def deliver(api: ServiceClient, *items: dict[str, Any]) -> None:
    response = api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=list(items)))
    assert response.status_code == 200, response.text


# What webhooks and sends write (profile fetches and the token write events of their own).
MESSAGING = ",".join(
    [
        *("message.received", "message.sent", "message.failed", "message.updated"),
        *("message.deleted", "reaction.updated", "conversation.read"),
    ]
)


def feed(api: ServiceClient, **params: Any) -> list[dict[str, Any]]:
    params = {"limit": 500, "types": MESSAGING, **params}
    response = api.get("/api/v1/events", params=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


def stored(db: Session) -> list[Event]:
    db.expire_all()
    return list(db.scalars(select(Event).order_by(Event.seq)))


def test_an_inbound_message_writes_one_event_with_its_snapshot(
    api: ServiceClient, db: Session
) -> None:
    deliver(api, webhooks.message_item(**IDS, mid="m-1", timestamp_ms=MS, text="Hi"))

    [event] = feed(api)
    assert event["type"] == "message.received"
    assert event["id"].startswith("evt_")
    assert event["account_id"] == ACCOUNT_ID
    assert event["conversation"] == CUSTOMER_ID
    message = event["data"]["message"]
    assert message == api.get("/api/v1/messages/m-1").json()
    [row] = [e for e in stored(db) if e.type == "message.received"]
    assert (row.id, row.seq, row.type) == (event["id"], event["seq"], "message.received")


def test_a_duplicate_or_retried_delivery_writes_no_event(api: ServiceClient, db: Session) -> None:
    item = webhooks.message_item(**IDS, mid="m-1", timestamp_ms=MS, text="Hi")
    deliver(api, item)
    deliver(api, item)  # the same event in another delivery
    body = webhooks.delivery(account_id=ACCOUNT_ID, items=[item])
    assert api.deliver(body).status_code == 200
    assert api.deliver(body).status_code == 200  # byte for byte: rolled back

    assert [e.type for e in stored(db) if e.type.startswith("message.")] == ["message.received"]


def test_the_snapshot_is_the_message_then_not_now(api: ServiceClient) -> None:
    deliver(api, webhooks.message_item(**IDS, mid="m-1", timestamp_ms=MS, text="Hi"))
    edit = {"mid": "m-1", "timestamp_ms": MS + 1, "text": "Hello", "num_edit": 1}
    deliver(api, webhooks.edit_item(**IDS, **edit))
    deliver(api, webhooks.unsend_item(**IDS, mid="m-1", timestamp_ms=MS + 2))

    events = feed(api)
    assert [event["type"] for event in events] == [
        "message.received",
        "message.updated",
        "message.deleted",
    ]
    texts = [event["data"]["message"]["text"] for event in events]
    assert texts == ["Hi", "Hello", None]
    assert events[2]["data"]["message"]["is_deleted"] is True
    # An older edit arriving late changes nothing: no event.
    deliver(api, webhooks.edit_item(**IDS, **{**edit, "text": "Hey", "num_edit": 1}))
    assert len(feed(api)) == 3


def test_reactions_reads_and_echoes_have_their_events(api: ServiceClient) -> None:
    deliver(api, webhooks.message_item(**IDS, mid="m-1", timestamp_ms=MS, text="Hi"))
    deliver(api, webhooks.echo_item(**IDS, mid="e-1", timestamp_ms=MS + 1, text="Hello!"))
    deliver(api, webhooks.reaction_item(**IDS, mid="e-1", timestamp_ms=MS + 2, reaction="love"))
    deliver(api, webhooks.reaction_item(**IDS, mid="e-1", timestamp_ms=MS + 3, action="unreact"))
    deliver(api, webhooks.read_item(**IDS, mid="e-1", timestamp_ms=MS + 4))
    deliver(api, webhooks.read_item(**IDS, mid="e-1", timestamp_ms=MS + 4))  # the same read

    events = feed(api)
    assert [event["type"] for event in events] == [
        "message.received",
        "message.sent",
        "reaction.updated",
        "reaction.updated",
        "conversation.read",
    ]
    assert events[1]["data"]["origin"] == "echo"
    assert events[2]["data"]["reaction"]["reaction"] == "love"
    assert events[2]["data"]["message"]["reactions"][0]["reaction"] == "love"
    assert events[3]["data"]["reaction"]["reaction"] is None
    read = events[4]["data"]
    assert read["read"]["mid"] == "e-1"
    assert read["conversation"]["customer"]["id"] == CUSTOMER_ID
    assert {event["conversation"] for event in events} == {CUSTOMER_ID}


def test_a_reaction_that_came_before_its_message_is_in_the_messages_snapshot(
    api: ServiceClient,
) -> None:
    # Meta does not deliver in order: the reaction is stored first, the message then.
    deliver(api, webhooks.reaction_item(**IDS, mid="m-1", timestamp_ms=MS + 1, reaction="love"))
    deliver(api, webhooks.message_item(**IDS, mid="m-1", timestamp_ms=MS, text="Hi"))

    [_, received] = feed(api)
    assert received["type"] == "message.received"
    [reaction] = received["data"]["message"]["reactions"]
    assert reaction["reaction"] == "love"
    assert received["data"]["message"] == api.get("/api/v1/messages/m-1").json()


def test_a_new_message_is_not_read_again_for_its_snapshot(db: Session) -> None:
    # The INSERT returns the row with its conversation's columns: no SELECT after the writes.
    serve(db)
    apply_delivery(db, text_message(mid="m-0"))  # the conversation and its users exist
    db.commit()
    with StatementCounter(db.get_bind()) as counted:
        apply_delivery(db, text_message(mid="m-1"), served_among=lambda _, ids: set(ids))
    db.commit()

    assert [statement.split()[0] for statement in counted.statements] == [
        "INSERT",  # conversations
        "INSERT",  # messages, returning the snapshot's columns
        "INSERT",  # events
    ]
    [event] = [e for e in stored(db) if e.payload["message"]["mid"] == "m-1"]
    assert event.payload["message"]["text"] == "hello"
    assert event.conversation == CUSTOMER_ID


def test_a_snapshot_shows_what_the_rest_of_its_delivery_did(api: ServiceClient) -> None:
    # Written in one batch: the read moves the conversation before the message is written,
    # the reaction and the edit after it (their message is read again for its snapshot).
    deliver(
        api,
        webhooks.read_item(**IDS, mid="m-0", timestamp_ms=MS + 9),
        webhooks.message_item(**IDS, mid="m-1", timestamp_ms=MS, text="Hi"),
        webhooks.message_item(**IDS, mid="m-2", timestamp_ms=MS + 1, text="Hey"),
        webhooks.reaction_item(**IDS, mid="m-2", timestamp_ms=MS + 2, reaction="love"),
        webhooks.message_item(**IDS, mid="m-3", timestamp_ms=MS + 3, text="Hullo"),
        webhooks.edit_item(**IDS, mid="m-3", timestamp_ms=MS + 4, text="Hello", num_edit=1),
    )

    received = {
        event["data"]["message"]["mid"]: event["data"]["message"]
        for event in feed(api, types="message.received")
    }
    assert set(received) == {"m-1", "m-2", "m-3"}
    for mid, snapshot in received.items():
        assert snapshot == api.get(f"/api/v1/messages/{mid}").json()
    assert [reaction["reaction"] for reaction in received["m-2"]["reactions"]] == ["love"]
    assert received["m-3"]["text"] == "Hello"


def test_a_rolled_back_transaction_leaves_no_event(db: Session) -> None:
    serve(db)  # the account whose entries intake applies
    apply_delivery(db, text_message(mid="m-rolled-back"))
    assert db.scalar(select(func.count()).select_from(Event)) == 1  # in the transaction
    db.rollback()

    assert db.scalar(select(func.count()).select_from(Event)) == 0


def test_the_feed_pages_and_filters(api: ServiceClient) -> None:
    for number in range(5):
        mid, at = f"m-{number}", MS + number
        deliver(api, webhooks.message_item(**IDS, mid=mid, timestamp_ms=at, text="x"))
    deliver(api, webhooks.unsend_item(**IDS, mid="m-0", timestamp_ms=MS + 10))

    first = api.get("/api/v1/events", params={"limit": 2, "types": MESSAGING}).json()
    assert [event["data"]["message"]["mid"] for event in first["data"]] == ["m-0", "m-1"]
    assert first["has_more"] is True
    rest = api.get(
        "/api/v1/events", params={"after": first["next_after"], "limit": 10, "types": MESSAGING}
    ).json()
    assert len(rest["data"]) == 4
    assert rest["has_more"] is False
    assert rest["next_after"] >= rest["data"][-1]["seq"]  # what the filter left out is read too
    seqs = [event["seq"] for event in first["data"] + rest["data"]]
    assert seqs == sorted(seqs)

    assert [e["type"] for e in feed(api, types="message.deleted")] == ["message.deleted"]
    assert [e["type"] for e in feed(api, account_id=ACCOUNT_ID)] == ["message.received"] * 5 + [
        "message.deleted"
    ]
    assert feed(api, account_id="17841400000000001") == []


@pytest.mark.parametrize(
    ("params", "code"),
    [({"types": "message.nope"}, "invalid_event_type"), ({"after": -1}, "validation_error")],
)
def test_bad_feed_parameters_are_422(api: ServiceClient, params: dict[str, Any], code: str) -> None:
    response = api.get("/api/v1/events", params=params)

    assert response.status_code == 422
    assert response.json()["code"] == code


def test_asking_for_deleted_events_is_410_events_expired(api: ServiceClient, db: Session) -> None:
    for number in range(3):
        mid, at = f"m-{number}", MS + number
        deliver(api, webhooks.message_item(**IDS, mid=mid, timestamp_ms=at, text="x"))
    first, second, _ = (event["seq"] for event in feed(api))
    db.execute(delete(Event).where(Event.seq <= second))
    db.commit()

    gone = api.get("/api/v1/events", params={"after": first})
    assert gone.status_code == 410
    assert gone.json()["code"] == "events_expired"
    assert [event["data"]["message"]["mid"] for event in feed(api)] == ["m-2"]  # what is kept


def test_a_send_writes_message_sent_and_a_refusal_message_failed(
    api: ServiceClient, meta: ServiceClient, anna: dict[str, Any]
) -> None:
    sent = api.post(f"/api/v1/conversations/{anna['id']}/messages", json={"text": "Yes!"})
    assert sent.status_code == 201, sent.text
    add_fault(meta, kind="send", error={"message": "Calls exceed rate limit", "code": 613})
    refused = api.post(f"/api/v1/conversations/{anna['id']}/messages", json={"text": "And?"})
    assert refused.status_code == 429

    events = [event for event in feed(api) if event["type"] != "message.received"]
    mid = sent.json()["mid"]
    ours = [event for event in events if event["data"]["message"]["mid"] == mid]
    # The echo of our own send is no news (it may only beat Meta's answer: then it was).
    assert ours[-1]["type"] == "message.sent"
    assert ours[-1]["data"]["origin"] == "api"
    assert ours[-1]["data"]["message"]["status"] == "sent"
    failed = [event for event in events if event["type"] == "message.failed"]
    assert [event["data"]["message"]["text"] for event in failed] == ["And?"]
    assert failed[0]["data"]["message"]["error"]["code"] == "instagram_rate_limited"
    assert {event["conversation"] for event in events} == {anna["id"]}


def test_a_fetched_profile_writes_profile_updated_once(
    api: ServiceClient, anna: dict[str, Any]
) -> None:
    events = feed(api, types="profile.updated")
    updates = [event for event in events if event["conversation"] == anna["id"]]

    assert len(updates) == 1
    user = updates[0]["data"]["user"]
    assert (user["username"], user["profile_status"]) == ("anna_k", "ok")
    assert user == {
        **api.get(f"/api/v1/users/{anna['id']}").json(),
        "fetched_at": user["fetched_at"],
    }


def sandbox_tokens(meta: ServiceClient, **body: Any) -> None:
    assert meta.put("/_sandbox/tokens", json=body).status_code == 200


def test_a_rejected_then_accepted_token_writes_account_updated(
    start_service: StartService, meta: ServiceClient
) -> None:
    server = start_service(token_cache_seconds=0, profile_worker_enabled=False)
    own_profile = {"user_id": ACCOUNT_ID, "refresh": "true"}
    with ServiceClient(server.url) as client:
        sandbox_tokens(meta, revoked=True)
        assert client.get(f"/api/v1/users/{ACCOUNT_ID}", params=own_profile).status_code == 502
        assert client.get(f"/api/v1/users/{ACCOUNT_ID}", params=own_profile).status_code == 502
        sandbox_tokens(meta, revoked=False)
        assert client.get(f"/api/v1/users/{ACCOUNT_ID}", params=own_profile).status_code == 200
        accounts = feed(client, types="account.updated")

    states = [event["data"]["account"]["token_state"] for event in accounts]
    assert states[0] == "invalid"  # once, however many calls Meta refuses
    assert states[1:] == ["valid"]  # accepted again
    assert {event["account_id"] for event in accounts} == {ACCOUNT_ID}
