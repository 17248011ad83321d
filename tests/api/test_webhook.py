"""`GET /webhook` (the handshake) and `POST /webhook` (durable, idempotent intake)."""

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Conversation, Message, User, WebhookDelivery
from tests.conftest import InProcess, StartService
from tests.helpers import (
    ACCOUNT_ID,
    CUSTOMER_ID,
    VERIFY_TOKEN,
    ServiceClient,
    count_rows,
    encode,
    example,
    example_bytes,
    serve_account,
    signed_headers,
    text_message,
)
from tests.stack import SharedService


def messages_by_mid(db: Session) -> dict[str, Message]:
    return {message.mid: message for message in db.scalars(select(Message))}


# --- GET /webhook: the subscription handshake ------------------------------------------------


def handshake(mode: str = "subscribe", token: str = VERIFY_TOKEN) -> dict[str, str]:
    return {"hub.mode": mode, "hub.challenge": "1158201444", "hub.verify_token": token}


@pytest.mark.parametrize("path", ["/webhook", "/webhook/"])
def test_handshake_echoes_the_challenge_as_plain_text(
    service_in_process: TestClient, path: str
) -> None:
    response = service_in_process.get(path, params=handshake())

    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params", [handshake(token="wrong"), handshake(mode="unsubscribe")], ids=["token", "mode"]
)
def test_handshake_with_wrong_token_or_mode_is_forbidden(
    service_in_process: TestClient, params: dict[str, str]
) -> None:
    response = service_in_process.get("/webhook", params=params)

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Webhook verification failed.",
        "code": "verification_failed",
    }


@pytest.mark.parametrize("missing", ["hub.mode", "hub.challenge", "hub.verify_token"])
def test_handshake_without_a_parameter_is_a_validation_error(
    service_in_process: TestClient, missing: str
) -> None:
    params = handshake()
    del params[missing]

    response = service_in_process.get("/webhook", params=params)

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["detail"][0]["loc"] == ["query", missing]


def test_handshake_without_a_configured_verify_token_is_refused(
    in_process: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = in_process(instagram_webhook_token=None)
    response = client.get("/webhook", params=handshake(token=""))

    assert response.status_code == 403
    assert response.json()["code"] == "verification_failed"
    assert "INSTAGRAM_WEBHOOK_TOKEN is not set" in caplog.text


# --- POST /webhook: storing deliveries ---------------------------------------------------------


def test_text_message_is_stored_with_its_conversation_and_raw_delivery(
    quiet_service: SharedService, db: Session
) -> None:
    raw = example_bytes("text")

    # The profile fetcher rests: the user stays as intake left it.
    with ServiceClient(quiet_service.url) as api:
        response = api.deliver(raw)

    assert response.status_code == 200
    # Like the original service, the delivery is echoed back.
    assert response.json() == json.loads(raw)
    message = db.scalars(select(Message)).one()
    sent = example("text")["entry"][0]["messaging"][0]
    assert message.mid == sent["message"]["mid"]
    assert message.text == "Hi! Do you ship to Berlin?"
    assert message.direction == "inbound"
    assert message.source == "webhook"
    assert message.status is None
    assert (message.sender_id, message.recipient_id) == (CUSTOMER_ID, ACCOUNT_ID)
    assert message.sent_at == datetime.fromtimestamp(sent["timestamp"] / 1000, tz=UTC)
    conversation = db.scalars(select(Conversation)).one()
    assert (conversation.account_id, conversation.customer_id) == (ACCOUNT_ID, CUSTOMER_ID)
    assert conversation.id == message.conversation_id
    assert conversation.last_inbound_at == message.sent_at
    assert conversation.last_message_at == message.sent_at
    user = db.get(User, CUSTOMER_ID)
    assert user is not None
    assert user.profile_status == "pending"
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert delivery.body == raw
    assert (delivery.status, delivery.event_count, delivery.error) == ("applied", 1, None)
    assert delivery.signature_valid is True
    assert delivery.applied_at is not None


@pytest.mark.parametrize("path", ["/webhook", "/webhook/"])
def test_both_paths_accept_deliveries(api: ServiceClient, db: Session, path: str) -> None:
    raw = example_bytes("text")

    response = api.post(path, data=raw, headers=signed_headers(raw))

    assert response.status_code == 200
    assert count_rows(db, Message) == 1


def test_the_same_delivery_twice_stores_the_message_once(api: ServiceClient, db: Session) -> None:
    raw = example_bytes("text")

    assert api.deliver(raw).status_code == 200
    assert api.deliver(raw).status_code == 200

    assert count_rows(db, Message) == 1
    assert count_rows(db, Conversation) == 1
    assert count_rows(db, WebhookDelivery) == 1  # byte for byte the same: stored once


def test_the_same_message_in_two_different_deliveries_is_stored_once(
    api: ServiceClient, db: Session
) -> None:
    first = text_message(mid="m-dup", text="hello")
    second = {**first, "entry": [{**first["entry"][0], "time": 1745923899999}]}

    assert api.deliver(first).status_code == 200
    assert api.deliver(second).status_code == 200

    assert list(messages_by_mid(db)) == ["m-dup"]


def test_two_entries_in_one_delivery_store_both_conversations(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    serve_account(api, meta, "17841400987654321")  # both accounts are served

    assert api.deliver(example_bytes("two_entries_one_delivery")).status_code == 200

    pairs = {(c.account_id, c.customer_id) for c in db.scalars(select(Conversation))}
    assert pairs == {
        (ACCOUNT_ID, CUSTOMER_ID),
        ("17841400987654321", "7731902284650017"),
    }
    texts = {m.text for m in db.scalars(select(Message))}
    assert texts == {"Is the store open on Sunday?", "Hello, I want to book a table for 4"}
    assert db.scalars(select(WebhookDelivery)).one().event_count == 2


def test_two_items_in_one_entry_store_both_messages(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("two_messaging_items_one_entry")).status_code == 200

    stored = sorted(db.scalars(select(Message)), key=lambda m: m.sent_at)
    assert [m.text for m in stored] == ["Here is the model I mean", None]
    assert stored[1].attachments == [
        example("two_messaging_items_one_entry")["entry"][0]["messaging"][1]["message"][
            "attachments"
        ][0]
    ]
    conversation = db.scalars(select(Conversation)).one()
    assert conversation.last_message_at == stored[1].sent_at


@pytest.mark.parametrize(
    "name",
    ["image", "multiple_attachments", "audio_voice_note", "share_post", "ig_reel", "story_mention"],
)
def test_attachments_are_kept_verbatim(api: ServiceClient, db: Session, name: str) -> None:
    assert api.deliver(example_bytes(name)).status_code == 200

    message = db.scalars(select(Message)).one()
    assert (
        message.attachments == example(name)["entry"][0]["messaging"][0]["message"]["attachments"]
    )
    assert message.text is None


def test_reply_quick_reply_and_ad_referral_are_kept(api: ServiceClient, db: Session) -> None:
    for name in ["reply_to_message", "story_reply", "quick_reply", "referral_ad_first_message"]:
        assert api.deliver(example_bytes(name)).status_code == 200

    by_mid = messages_by_mid(db)

    def sent(name: str) -> dict:
        return example(name)["entry"][0]["messaging"][0]["message"]

    assert by_mid[sent("reply_to_message")["mid"]].reply_to == sent("reply_to_message")["reply_to"]
    assert by_mid[sent("story_reply")["mid"]].reply_to == sent("story_reply")["reply_to"]
    assert by_mid[sent("quick_reply")["mid"]].quick_reply_payload == "TRACK_ORDER"
    referral = by_mid[sent("referral_ad_first_message")["mid"]].referral
    assert referral == sent("referral_ad_first_message")["referral"]


def test_echo_is_stored_as_outbound_in_the_customers_conversation(
    api: ServiceClient, db: Session
) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200
    inbound_at = db.scalars(select(Conversation)).one().last_inbound_at

    assert api.deliver(example_bytes("echo_text")).status_code == 200

    echo = messages_by_mid(db)[example("echo_text")["entry"][0]["messaging"][0]["message"]["mid"]]
    assert (echo.direction, echo.source, echo.status) == ("outbound", "echo", "sent")
    assert (echo.sender_id, echo.recipient_id) == (ACCOUNT_ID, CUSTOMER_ID)
    db.expire_all()
    conversation = db.scalars(select(Conversation)).one()
    assert conversation.id == echo.conversation_id
    # An echo is the business talking: it never reopens the customer's messaging window.
    assert conversation.last_inbound_at == inbound_at
    assert conversation.last_message_at == echo.sent_at


def test_standby_messages_are_stored(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("standby")).status_code == 200

    assert db.scalars(select(Message)).one().text == "Can I talk to a person?"


def test_unsend_clears_the_stored_message(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("image")).status_code == 200
    assert api.deliver(example_bytes("unsend_is_deleted")).status_code == 200

    message = db.scalars(select(Message)).one()
    assert message.is_deleted is True
    assert message.attachments is None


def test_unsend_before_the_message_leaves_a_tombstone_that_stays(
    api: ServiceClient, db: Session
) -> None:
    assert api.deliver(example_bytes("unsend_is_deleted")).status_code == 200
    assert api.deliver(example_bytes("image")).status_code == 200

    message = db.scalars(select(Message)).one()
    assert (message.is_deleted, message.attachments, message.text) == (True, None, None)


def test_unsupported_message_is_a_placeholder_row(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("unsupported")).status_code == 200

    message = db.scalars(select(Message)).one()
    assert (message.is_unsupported, message.text, message.attachments) == (True, None, None)


@pytest.mark.parametrize(
    "item",
    [
        {"optin": {"ref": "x"}},
        {"pass_thread_control": {"new_owner_app_id": "1"}},
        {"something_new": {"a": 1}},
    ],
    ids=["optin", "handover", "unknown"],
)
def test_event_kinds_instagram_does_not_document_are_kept_raw_and_answered_200(
    api: ServiceClient, db: Session, item: dict
) -> None:
    payload = example("text")
    sent = payload["entry"][0]["messaging"][0]
    payload["entry"][0]["messaging"][0] = {
        "sender": sent["sender"],
        "recipient": sent["recipient"],
        "timestamp": sent["timestamp"],
        **item,
    }
    raw = encode(payload)

    response = api.deliver(raw)

    assert response.status_code == 200
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert (delivery.body, delivery.status, delivery.event_count) == (raw, "applied", 1)
    assert count_rows(db, Message) == 0


def test_dashboard_test_entry_creates_no_conversation(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("dashboard_test_changes_form")).status_code == 200

    assert count_rows(db, Conversation) == 0
    assert count_rows(db, User) == 0


def test_the_original_readmes_sample_with_numeric_ids_is_stored_with_string_ids(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    serve_account(api, meta, "17841472223448520")
    sample = {
        "object": "instagram",
        "entry": [
            {
                "id": 17841472223448520,
                "time": 1738336944781,
                "messaging": [
                    {
                        "sender": {"id": 1667654223855126},
                        "recipient": {"id": 17841472223448520},
                        "timestamp": "1738336944379",
                        "message": {"mid": "aWdfZAG1-sample", "text": "test message webhook"},
                    }
                ],
            }
        ],
    }

    assert api.deliver(sample).status_code == 200

    message = db.scalars(select(Message)).one()
    assert (message.sender_id, message.recipient_id) == ("1667654223855126", "17841472223448520")
    assert message.sent_at == datetime(2025, 1, 31, 15, 22, 24, 379000, tzinfo=UTC)
    assert db.scalars(select(Conversation)).one().account_id == "17841472223448520"


def test_timestamps_in_seconds_are_normalised(api: ServiceClient, db: Session) -> None:
    assert api.deliver(text_message(mid="m-seconds", timestamp=1745923812)).status_code == 200

    assert db.scalars(select(Message)).one().sent_at == datetime(
        2025, 4, 29, 10, 50, 12, tzinfo=UTC
    )


# --- what is refused, and what is stored anyway ------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"Content-Type": "application/json", "X-Hub-Signature-256": "garbage"},
        signed_headers(example_bytes("text"), secret="another-secret"),
    ],
    ids=["missing", "wrong", "malformed", "other-secret"],
)
def test_unsigned_or_badly_signed_delivery_is_refused_and_nothing_stored(
    api: ServiceClient, db: Session, headers: dict[str, str]
) -> None:
    response = api.post("/webhook", data=example_bytes("text"), headers=headers)

    assert response.status_code == 403
    assert response.json() == {"detail": "Invalid webhook signature.", "code": "invalid_signature"}
    assert count_rows(db, WebhookDelivery) == 0
    assert count_rows(db, Message) == 0


def test_signature_over_a_re_serialised_body_does_not_match(
    api: ServiceClient, db: Session
) -> None:
    raw = example_bytes("text")
    reserialised = json.dumps(json.loads(raw)).encode()

    response = api.post("/webhook", data=raw, headers=signed_headers(reserialised))

    assert response.status_code == 403
    assert count_rows(db, WebhookDelivery) == 0


def test_without_an_app_secret_every_delivery_is_refused_and_the_log_says_why(
    in_process: InProcess,
    service_environment: dict[str, Any],
    db: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = in_process(service_environment, instagram_app_secret=None)
    raw = example_bytes("text")
    with caplog.at_level(logging.WARNING):
        response = client.post("/webhook", content=raw, headers=signed_headers(raw))

    assert response.status_code == 403
    assert response.json()["code"] == "invalid_signature"
    assert "INSTAGRAM_APP_SECRET is not set" in caplog.text
    assert count_rows(db, WebhookDelivery) == 0


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b'{"object": NaN}', b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe{}"],
    ids=["broken", "empty", "nan", "deep", "bad-utf8"],
)
def test_malformed_json_is_a_400_and_nothing_stored(
    api: ServiceClient, db: Session, raw: bytes
) -> None:
    response = api.post("/webhook", data=raw, headers=signed_headers(raw))

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert count_rows(db, WebhookDelivery) == 0


def test_body_over_the_limit_is_a_413(start_service: StartService, db: Session) -> None:
    server = start_service(max_body_bytes=2048)
    raw = encode(text_message(mid="m-big", text="x" * 4000))
    with ServiceClient(server.url) as client:
        declared = client.post("/webhook", data=raw, headers=signed_headers(raw))
        chunked = client.post(
            "/webhook", data=iter([raw[:1000], raw[1000:]]), headers=signed_headers(raw)
        )

    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
    assert count_rows(db, WebhookDelivery) == 0


@pytest.mark.parametrize(
    "payload",
    [[1, 2], "hello", 42, {"object": "instagram", "entry": "not-a-list"}, {"entry": [7]}],
    ids=["list", "string", "number", "entry-string", "entry-number"],
)
def test_signed_json_of_an_unknown_shape_is_kept_as_failed_and_answered_200(
    api: ServiceClient, db: Session, payload: object
) -> None:
    raw = encode(payload)

    response = api.deliver(raw)

    assert response.status_code == 200
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert (delivery.body, delivery.status) == (raw, "failed")
    assert delivery.error


def test_a_bad_event_is_recorded_and_the_rest_of_the_delivery_applied(
    api: ServiceClient, db: Session
) -> None:
    payload = example("two_messaging_items_one_entry")
    payload["entry"][0]["messaging"][0]["timestamp"] = "yesterday"

    response = api.deliver(payload)

    assert response.status_code == 200
    stored = db.scalars(select(Message)).one()
    assert stored.mid == payload["entry"][0]["messaging"][1]["message"]["mid"]
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert delivery.status == "failed"
    assert delivery.event_count == 2
    assert delivery.error.startswith("entry[0].messaging[0]: ")
    assert "timestamp" in delivery.error


@pytest.mark.parametrize(
    "message",
    [
        {"text": "no mid"},
        {"mid": 12, "text": ["not", "a", "string"]},
        {"mid": "m-x", "attachments": "not-a-list"},
        {"mid": "m-y", "text": "nul \u0000 byte"},
    ],
    ids=["no-mid", "wrong-types", "attachments-type", "nul-byte"],
)
def test_wrongly_typed_messages_never_cause_a_5xx(
    api: ServiceClient, db: Session, message: dict
) -> None:
    payload = example("text")
    payload["entry"][0]["messaging"][0]["message"] = message

    response = api.deliver(payload)

    assert response.status_code == 200
    assert db.scalars(select(WebhookDelivery)).one().body == encode(payload)


def test_a_wrapped_list_body_is_accepted(api: ServiceClient, db: Session) -> None:
    assert api.deliver([example("text")]).status_code == 200

    assert count_rows(db, Message) == 1


def test_database_down_is_a_503_so_meta_retries(database_down: TestClient) -> None:
    raw = example_bytes("text")
    response = database_down.post("/webhook", content=raw, headers=signed_headers(raw))

    assert response.status_code == 503
    assert response.json() == {
        "detail": "The database is unavailable; retry later.",
        "code": "database_unavailable",
    }
    assert response.headers["Retry-After"]
