"""`POST /message/send`: one Send API call, the stored outbound message, its echo merged."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Conversation, Message, WebhookDelivery
from app.sandbox.server import BackgroundServer
from tests.conftest import StartService
from tests.helpers import (
    ACCOUNT_ID,
    ServiceClient,
    add_fault,
    customer_writes,
    graph_calls,
    new_customer,
    wait_for_profiles,
    wait_until,
)

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def anna(meta: ServiceClient, service: BackgroundServer) -> dict:
    """A customer who wrote to the business just now: the messaging window is open."""
    customer = new_customer(meta, username="anna_k")
    customer_writes(meta, customer["id"], "Do you ship to Berlin?")
    return customer


def outbound(db: Session) -> list[Message]:
    db.expire_all()
    return list(db.scalars(select(Message).where(Message.direction == "outbound")))


def deliveries(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(WebhookDelivery)) or 0


def sends(meta: ServiceClient) -> list[dict]:
    return meta.get("/_sandbox/sent").json()


@pytest.mark.parametrize("echo_mode", ["after", "before"])
def test_send_calls_meta_once_stores_the_message_and_merges_its_echo(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict, echo_mode: str
) -> None:
    meta.put("/_sandbox/config", json={"echo_mode": echo_mode})
    delivered_before = deliveries(db)

    response = api.post(
        "/message/send",
        params={"user_id": anna["id"]},
        json={"recipient": {"id": anna["id"]}, "message": {"text": "test send text by API"}},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["recipient"] == {"id": anna["id"]}
    assert body["message"] == {"text": "test send text by API"}
    calls = sends(meta)
    assert len(calls) == 1
    assert calls[0]["body"] == {
        "recipient": {"id": anna["id"]},
        "message": {"text": "test send text by API"},
    }
    assert body["message_id"] == calls[0]["response"]["message_id"]
    # The echo webhook arrives (before or after Meta's answer) and merges into the same row.
    wait_until(lambda: deliveries(db) == delivered_before + 1, what="the echo delivery")
    [message] = outbound(db)
    assert (message.mid, message.status, message.source) == (body["message_id"], "sent", "api")
    assert (message.sender_id, message.recipient_id) == (ACCOUNT_ID, anna["id"])
    assert message.text == "test send text by API"
    conversation = db.get(Conversation, message.conversation_id)
    assert conversation is not None
    assert conversation.customer_id == anna["id"]
    assert conversation.last_message_at == message.sent_at


def test_the_recipient_may_come_from_the_body_alone(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    response = api.post(
        "/message/send", json={"recipient": {"id": anna["id"]}, "message": {"text": "hi"}}
    )

    assert response.status_code == 200
    assert sends(meta)[0]["body"]["recipient"] == {"id": anna["id"]}


def test_numeric_recipient_ids_are_accepted_as_in_the_original_readme(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    response = api.post(
        "/message/send", json={"recipient": {"id": int(anna["id"])}, "message": {"text": "hi"}}
    )

    assert response.status_code == 200
    assert response.json()["recipient"] == {"id": anna["id"]}


def test_a_recipient_that_differs_from_user_id_is_a_422_and_nothing_is_sent(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    response = api.post(
        "/message/send",
        params={"user_id": anna["id"]},
        json={"recipient": {"id": "1234567890123456"}, "message": {"text": "hi"}},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "recipient_mismatch"
    assert sends(meta) == []
    assert outbound(db) == []


def test_no_recipient_at_all_is_a_422(api: ServiceClient, meta: ServiceClient) -> None:
    response = api.post("/message/send", json={"message": {"text": "hi"}})

    assert response.status_code == 422
    assert response.json()["code"] == "recipient_required"
    assert sends(meta) == []


@pytest.mark.parametrize(
    "text",
    ["я" * 501, "😀" * 251, "   "],
    ids=["1002-bytes-of-cyrillic", "1004-bytes-of-emoji", "blank"],
)
def test_text_meta_would_refuse_is_a_422_naming_the_field(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict, text: str
) -> None:
    response = api.post(
        "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": text}}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["detail"][0]["loc"] == ["body", "message", "text"]
    assert sends(meta) == []
    assert outbound(db) == []


def test_exactly_1000_bytes_is_allowed(api: ServiceClient, meta: ServiceClient, anna: dict) -> None:
    response = api.post(
        "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "я" * 500}}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [None, "not json", {"message": "text"}, {"message": {}}, {"message": {"text": 5}}],
    ids=["empty", "not-json", "message-string", "no-text", "text-number"],
)
def test_malformed_bodies_are_422(api: ServiceClient, anna: dict, body: object) -> None:
    if isinstance(body, str):
        response = api.post(
            "/message/send",
            params={"user_id": anna["id"]},
            data=body,
            headers={"Content-Type": "application/json"},
        )
    else:
        response = api.post("/message/send", params={"user_id": anna["id"]}, json=body)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_bad_user_id_is_a_422(api: ServiceClient) -> None:
    response = api.post(
        "/message/send", params={"user_id": "anna"}, json={"message": {"text": "x"}}
    )

    assert response.status_code == 422


def test_outside_the_24_hour_window_we_know_of_is_a_409_without_calling_meta(
    api: ServiceClient, meta: ServiceClient, db: Session, service: BackgroundServer
) -> None:
    customer = new_customer(meta, username="late")
    customer_writes(
        meta, customer["id"], "hello?", timestamp_ms=int(time.time() * 1000) - DAY_MS - 60_000
    )

    response = api.post(
        "/message/send", params={"user_id": customer["id"]}, json={"message": {"text": "sorry"}}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "outside_window"
    assert sends(meta) == []
    assert outbound(db) == []


def test_with_no_inbound_message_stored_metas_answer_decides(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    # A customer who never wrote: the service knows nothing, Meta refuses (window closed).
    stranger = new_customer(meta, username="stranger")

    response = api.post(
        "/message/send", params={"user_id": stranger["id"]}, json={"message": {"text": "hi"}}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "outside_window"
    assert len(sends(meta)) == 1
    [message] = outbound(db)
    assert (message.status, message.mid) == ("failed", None)
    assert message.error["graph"]["code"] == 10
    assert message.error["graph"]["error_subcode"] == 2534022


def test_unknown_recipient_is_a_404_and_the_attempt_is_stored_as_failed(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    response = api.post(
        "/message/send", params={"user_id": "1999999999999999"}, json={"message": {"text": "hi"}}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "recipient_not_found"
    [message] = outbound(db)
    assert message.status == "failed"
    assert message.error["graph"]["error_subcode"] == 2534014


def test_rate_limited_send_is_a_429_with_retry_after(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    add_fault(
        meta,
        kind="send",
        error={"message": "Calls exceed rate limit", "code": 613, "error_subcode": 2534040},
    )

    response = api.post(
        "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "hi"}}
    )

    assert response.status_code == 429
    assert response.json()["code"] == "instagram_rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    assert outbound(db)[0].status == "failed"


def test_an_invalid_token_is_a_502_saying_so(
    start_service: StartService, meta: ServiceClient, anna: dict
) -> None:
    server = start_service(instagram_user_token="IGAA-revoked")
    with ServiceClient(server.url) as client:
        response = client.post(
            "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "hi"}}
        )

    assert response.status_code == 502
    assert response.json()["code"] == "instagram_token_invalid"
    assert "IGAA-revoked" not in response.text


def test_a_hanging_meta_fails_within_the_timeout_with_504_and_is_not_retried(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    server = start_service(instagram_read_timeout=0.5)
    add_fault(meta, kind="send", delay_seconds=2)
    started = time.monotonic()
    with ServiceClient(server.url) as client:
        response = client.post(
            "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "hi"}}
        )

    assert response.status_code == 504
    assert response.json()["code"] == "instagram_timeout"
    assert time.monotonic() - started < 2
    assert outbound(db)[0].status == "failed"
    # A POST is never repeated: Meta may have delivered it even though it did not answer.
    assert len(graph_calls(meta, "send")) == 1


def test_meta_unreachable_is_a_503(start_service: StartService, anna: dict) -> None:
    server = start_service(instagram_graph_url="http://127.0.0.1:9")
    with ServiceClient(server.url) as client:
        response = client.post(
            "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "hi"}}
        )

    assert response.status_code == 503
    assert response.json()["code"] == "instagram_unreachable"


def test_without_a_configured_account_id_the_account_comes_from_me(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    wait_for_profiles(db, anna["id"], ACCOUNT_ID)  # the default service's fetcher is done
    me_calls = len(graph_calls(meta, "me"))
    server = start_service(instagram_account_id=None, profile_worker_enabled=False)
    with ServiceClient(server.url) as client:
        first = client.post(
            "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "one"}}
        )
        second = client.post(
            "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "two"}}
        )

    assert first.status_code == second.status_code == 200
    assert {message.sender_id for message in outbound(db)} == {ACCOUNT_ID}
    assert len(graph_calls(meta, "me")) == me_calls + 1  # asked once per process


@pytest.mark.parametrize("echo_mode", ["after", "before"])
def test_concurrent_sends_and_their_echoes_store_each_message_once(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict, echo_mode: str
) -> None:
    meta.put("/_sandbox/config", json={"echo_mode": echo_mode})
    delivered_before = deliveries(db)

    def send(number: int) -> int:
        with ServiceClient(api.base_url) as client:
            return client.post(
                "/message/send",
                params={"user_id": anna["id"]},
                json={"message": {"text": f"reply {number}"}},
            ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(16)))

    assert statuses == [200] * 16
    wait_until(lambda: deliveries(db) == delivered_before + 16, what="16 echo deliveries")
    stored = outbound(db)
    assert sorted(m.text for m in stored) == sorted(f"reply {n}" for n in range(16))
    assert {m.status for m in stored} == {"sent"}
    assert {m.source for m in stored} == {"api"}
    assert len({m.mid for m in stored}) == 16
