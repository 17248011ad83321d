"""`POST /message/send`: one Send API call, the stored outbound message, its echo merged."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Conversation, Message, WebhookDelivery
from app.repositories import messages
from app.sandbox import webhooks
from app.services.webhooks import WebhookService
from tests.conftest import ANNA_FIRST_WORDS, StartService
from tests.helpers import (
    ACCOUNT_ID,
    ServiceClient,
    add_fault,
    count_rows,
    customer_writes,
    graph_calls,
    new_customer,
    wait_until,
)
from tests.helpers import outbound_messages as outbound
from tests.helpers import sandbox_sends as sends
from tests.stack import SharedService

DAY_MS = 24 * 3600 * 1000


def deliveries(db: Session) -> int:
    return count_rows(db, WebhookDelivery)


def sent_as_asked(meta: ServiceClient, db: Session, *, customer: str, text: str) -> Message:
    """Meta got the message once, and it is stored as sent under the mid Meta gave it."""
    [call] = sends(meta)
    assert call["body"] == {"recipient": {"id": customer}, "message": {"text": text}}
    [message] = outbound(db)
    assert (message.mid, message.status, message.source) == (
        call["response"]["message_id"],
        "sent",
        "api",
    )
    assert (message.recipient_id, message.text) == (customer, text)
    return message


def failed_as(db: Session, code: str) -> Message:
    """The attempt is stored once, as failed with this error code and no mid."""
    [message] = outbound(db)
    assert (message.status, message.mid, message.error["code"]) == ("failed", None, code)
    return message


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
    message = sent_as_asked(meta, db, customer=anna["id"], text="hi")
    assert response.json()["message_id"] == message.mid


def test_numeric_recipient_ids_are_accepted_as_in_the_original_readme(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    response = api.post(
        "/message/send", json={"recipient": {"id": int(anna["id"])}, "message": {"text": "hi"}}
    )

    assert response.status_code == 200
    assert response.json()["recipient"] == {"id": anna["id"]}
    sent_as_asked(meta, db, customer=anna["id"], text="hi")


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


def test_no_recipient_at_all_is_a_422(api: ServiceClient, meta: ServiceClient, db: Session) -> None:
    response = api.post("/message/send", json={"message": {"text": "hi"}})

    assert response.status_code == 422
    assert response.json()["code"] == "recipient_required"
    assert sends(meta) == []
    assert outbound(db) == []


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


def test_exactly_1000_bytes_is_allowed(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    response = api.post(
        "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "я" * 500}}
    )

    assert response.status_code == 200
    sent_as_asked(meta, db, customer=anna["id"], text="я" * 500)


@pytest.mark.parametrize(
    "body",
    [None, "not json", {"message": "text"}, {"message": {}}, {"message": {"text": 5}}],
    ids=["empty", "not-json", "message-string", "no-text", "text-number"],
)
def test_malformed_bodies_are_422(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict, body: object
) -> None:
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
    assert sends(meta) == []
    assert outbound(db) == []


def test_bad_user_id_is_a_422(service_in_process: TestClient) -> None:
    # No database and no Graph API behind it: nothing can be stored or sent.
    response = service_in_process.post(
        "/message/send", params={"user_id": "anna"}, json={"message": {"text": "x"}}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "user_id"]


def test_outside_the_24_hour_window_we_know_of_is_a_409_without_calling_meta(
    api: ServiceClient, meta: ServiceClient, db: Session, service: SharedService
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
    message = failed_as(db, "outside_window")
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
    assert len(sends(meta)) == 1
    message = failed_as(db, "recipient_not_found")
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
    message = failed_as(db, "instagram_rate_limited")
    assert (message.error["graph"]["code"], message.error["graph"]["error_subcode"]) == (
        613,
        2534040,
    )


def test_an_invalid_token_is_a_502_saying_so(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    server = start_service(instagram_user_token="IGAA-revoked")
    with ServiceClient(server.url) as client:
        response = client.post(
            "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "hi"}}
        )

    assert response.status_code == 502
    assert response.json()["code"] == "instagram_token_invalid"
    assert "IGAA-revoked" not in response.text
    message = failed_as(db, "instagram_token_invalid")
    assert message.error["graph"]["code"] == 190
    assert "IGAA-revoked" not in str(message.error)


def test_a_hanging_meta_fails_within_the_timeout_with_504_and_is_not_retried(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    server = start_service(instagram_read_timeout=0.5)
    # Meta holds the call far longer than the timeout (the sandbox's reset lets it go).
    add_fault(meta, kind="send", delay_seconds=60)
    with ServiceClient(server.url) as client:
        response = client.post(
            "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "hi"}}
        )

    assert response.status_code == 504
    assert response.json()["code"] == "instagram_timeout"
    # The service gave up on its own: Meta still has not answered the one call it got.
    # A POST is never repeated: Meta may have delivered it even though it did not answer.
    [call] = graph_calls(meta, "send")
    assert call["status_code"] is None
    failed_as(db, "instagram_timeout")


def test_meta_unreachable_is_a_503(start_service: StartService, db: Session, anna: dict) -> None:
    server = start_service(instagram_graph_url="http://127.0.0.1:9")
    with ServiceClient(server.url) as client:
        response = client.post(
            "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "hi"}}
        )

    assert response.status_code == 503
    assert response.json()["code"] == "instagram_unreachable"
    failed_as(db, "instagram_unreachable")


def test_without_a_configured_account_id_the_account_comes_from_me(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
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


def test_meta_answering_200_without_a_message_id_is_a_502_and_the_send_is_stored_failed(
    api: ServiceClient,
    meta: ServiceClient,
    db: Session,
    anna: dict,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Meta says yes but gives no message_id: nothing to record the message by.
    add_fault(meta, kind="send", status=200, body={"recipient_id": anna["id"]})

    response = api.post(
        "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "hi"}}
    )

    assert response.status_code == 502
    assert response.json() == {
        "detail": "The Instagram API answered without a message_id.",
        "code": "instagram_error",
    }
    [call] = sends(meta)
    assert (call["status_code"], call["response"]) == (200, {"recipient_id": anna["id"]})
    message = failed_as(db, "instagram_error")
    assert message.error["detail"] == "no message_id in the answer"
    assert f"answered without a message_id for message {message.id}" in caplog.text
    # A failed send is not part of the history.
    history = api.get("/messages", params={"user_id": anna["id"]}).json()
    assert [m["text"] for m in history] == [ANNA_FIRST_WORDS]


def test_an_echo_arriving_while_the_send_is_marked_sent_waits_and_merges(
    api: ServiceClient,
    meta: ServiceClient,
    db: Session,
    anna: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sandbox sends no echo itself: the test delivers it at the worst moment, while the
    # service holds the transaction that marks the message sent.
    meta.put("/_sandbox/config", json={"echo_mode": "off"})
    mark_sent = messages.attach_mid
    intake_started = threading.Event()
    receive = WebhookService.receive
    echo_answers: list[int] = []

    def receive_and_tell(self: WebhookService, **kwargs: Any) -> None:
        intake_started.set()
        receive(self, **kwargs)

    def deliver_echo(mid: str) -> None:
        item = webhooks.echo_item(
            account_id=ACCOUNT_ID,
            customer_id=anna["id"],
            mid=mid,
            timestamp_ms=int(time.time() * 1000),
            text="racing",
        )
        payload = webhooks.delivery(account_id=ACCOUNT_ID, items=[item])
        with ServiceClient(meta.base_url) as sandbox:
            pushed = sandbox.post("/_sandbox/webhooks", json={"payload": payload})
        echo_answers.append(pushed.json()["status_code"])

    def mark_sent_while_the_echo_arrives(session: Session, **row_and_mid: Any) -> Any:
        echo = threading.Thread(target=deliver_echo, args=(row_and_mid["mid"],))
        echo.start()
        # The echo is in the service's intake now; it must wait for this transaction.
        assert intake_started.wait(10), "the echo never reached the service"
        try:
            return mark_sent(session, **row_and_mid)
        finally:
            racing.append(echo)

    racing: list[threading.Thread] = []
    monkeypatch.setattr(WebhookService, "receive", receive_and_tell)
    monkeypatch.setattr(messages, "attach_mid", mark_sent_while_the_echo_arrives)

    response = api.post(
        "/message/send", params={"user_id": anna["id"]}, json={"message": {"text": "racing"}}
    )

    assert response.status_code == 200
    [echo] = racing
    echo.join(10)
    assert echo_answers == [200]
    # One message, the one the service sent, marked sent under Meta's mid; the echo merged.
    [message] = outbound(db)
    assert (message.mid, message.status, message.source, message.text) == (
        response.json()["message_id"],
        "sent",
        "api",
        "racing",
    )
    db.expire_all()
    newest = db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id.desc())).first()
    assert newest is not None
    assert (newest.status, newest.event_count) == ("applied", 1)
    assert b'"is_echo"' in newest.body
