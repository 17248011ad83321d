"""POST /api/v1/conversations/{id}/messages, reactions and actions; GET /api/v1/users/{id}."""

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Reaction
from tests.conftest import StartService
from tests.helpers import (
    ACCOUNT_ID,
    ServiceClient,
    StatementCounter,
    add_fault,
    count_rows,
    customer_writes,
    graph_calls,
    new_customer,
)
from tests.helpers import outbound_messages as outbound
from tests.helpers import sandbox_sends as sends
from tests.stack import SharedService

DAY_MS = 24 * 3600 * 1000
IMAGE = "https://cdn.example.com/jacket.jpg"
# A generic template element: sent as given, forwarded to Meta unchanged.
SHIRT = {
    "title": "Linen shirt",
    "subtitle": "€49",
    "image_url": IMAGE,
    "default_action": {"type": "web_url", "url": "https://shop.example.com/1"},
    "buttons": [{"type": "web_url", "title": "View", "url": "https://shop.example.com/1"}],
}


def send(api: ServiceClient, customer: str, body: dict[str, Any], **headers: str) -> Any:
    return api.post(f"/api/v1/conversations/{customer}/messages", json=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "graph_message"),
    [
        ({"text": "Hello!"}, {"text": "Hello!"}),
        (
            {"text": "Which size?", "quick_replies": [{"title": "M", "payload": "SIZE_M"}]},
            {
                "text": "Which size?",
                "quick_replies": [{"content_type": "text", "title": "M", "payload": "SIZE_M"}],
            },
        ),
        (
            {"attachment": {"type": "image", "url": IMAGE}},
            {"attachment": {"type": "image", "payload": {"url": IMAGE}}},
        ),
        (
            {"attachment": {"type": "video", "url": "https://cdn.example.com/a.mp4"}},
            {"attachment": {"type": "video", "payload": {"url": "https://cdn.example.com/a.mp4"}}},
        ),
        ({"attachment": {"type": "like_heart"}}, {"attachment": {"type": "like_heart"}}),
        (
            {"images": [IMAGE, "https://cdn.example.com/b.jpg"]},
            {
                "attachments": [
                    {"type": "image", "payload": {"url": IMAGE}},
                    {"type": "image", "payload": {"url": "https://cdn.example.com/b.jpg"}},
                ]
            },
        ),
        (
            {
                "template": {
                    "template_type": "button",
                    "text": "How can we help?",
                    "buttons": [
                        {"type": "postback", "title": "Track order", "payload": "TRACK"},
                        {"type": "web_url", "title": "Shop", "url": "https://shop.example.com"},
                    ],
                }
            },
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": "How can we help?",
                        "buttons": [
                            {"type": "postback", "title": "Track order", "payload": "TRACK"},
                            {"type": "web_url", "title": "Shop", "url": "https://shop.example.com"},
                        ],
                    },
                }
            },
        ),
        (
            {
                "template": {
                    "template_type": "generic",
                    "elements": [SHIRT],
                }
            },
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "generic",
                        "elements": [SHIRT],
                    },
                }
            },
        ),
    ],
    ids=[
        "text",
        "quick-replies",
        "image",
        "video",
        "heart",
        "images",
        "button-template",
        "generic-template",
    ],
)
def test_every_kind_of_message_is_sent_once_and_stored(
    api: ServiceClient,
    meta: ServiceClient,
    db: Session,
    anna: dict,
    body: dict,
    graph_message: dict,
) -> None:
    response = send(api, anna["id"], body)

    assert response.status_code == 201, response.text
    [call] = sends(meta)
    assert call["body"] == {"recipient": {"id": anna["id"]}, "message": graph_message}
    created = response.json()
    assert created["mid"] == call["response"]["message_id"]
    assert (created["direction"], created["status"], created["sender_id"]) == (
        "outbound",
        "sent",
        ACCOUNT_ID,
    )
    [stored] = outbound(db)
    assert (stored.mid, stored.status, stored.source) == (created["mid"], "sent", "api")
    assert stored.text == graph_message.get("text")
    expected_attachments = graph_message.get("attachments") or (
        [graph_message["attachment"]] if "attachment" in graph_message else None
    )
    assert stored.attachments == expected_attachments


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, []),
        ({"text": "a", "attachment": {"type": "like_heart"}}, []),
        ({"text": "я" * 501}, ["body", "text"]),
        (
            {"text": "x", "quick_replies": [{"title": "x" * 21, "payload": "P"}]},
            ["body", "quick_replies", 0, "title"],
        ),
        (
            {"text": "x", "quick_replies": [{"title": "t", "payload": "P"}] * 14},
            ["body", "quick_replies"],
        ),
        (
            {
                "text": "Your phone?",
                "quick_replies": [
                    {"content_type": "user_phone_number", "title": "t", "payload": "P"}
                ],
            },
            ["body", "quick_replies", 0, "content_type"],
        ),
        (
            {
                "text": "Your email?",
                "quick_replies": [{"content_type": "user_email", "title": "t", "payload": "P"}],
            },
            ["body", "quick_replies", 0, "content_type"],
        ),
        (
            {"attachment": {"type": "image", "url": "http://plain.example.com/a.jpg"}},
            ["body", "attachment", "url"],
        ),
        ({"attachment": {"type": "image"}}, ["body", "attachment"]),
        ({"attachment": {"type": "like_heart", "url": IMAGE}}, ["body", "attachment"]),
        ({"attachment": {"type": "sticker", "url": IMAGE}}, ["body", "attachment", "type"]),
        ({"images": [IMAGE] * 11}, ["body", "images"]),
        ({"images": [IMAGE]}, ["body", "images"]),
        (
            {
                "attachment": {"type": "like_heart"},
                "quick_replies": [{"title": "a", "payload": "b"}],
            },
            [],
        ),
        (
            {
                "template": {
                    "template_type": "button",
                    "text": "x",
                    "buttons": [{"type": "postback", "title": "a", "payload": "b"}] * 4,
                }
            },
            ["body", "template", "button", "buttons"],
        ),
        ({"text": "x", "tag": "ACCOUNT_UPDATE"}, ["body", "tag"]),
        ({"text": "x", "unknown": 1}, ["body", "unknown"]),
    ],
    ids=[
        "empty",
        "two-kinds",
        "text-bytes",
        "quick-reply-title",
        "14-quick-replies",
        "phone-quick-reply",
        "email-quick-reply",
        "http-url",
        "no-url",
        "heart-with-url",
        "unknown-type",
        "11-images",
        "1-image",
        "quick-replies-without-text",
        "4-buttons",
        "other-tag",
        "unknown-field",
    ],
)
def test_what_meta_would_refuse_is_a_422_naming_the_field(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict, body: dict, field: list
) -> None:
    response = send(api, anna["id"], body)

    assert response.status_code == 422
    answer = response.json()
    assert answer["code"] == "validation_error"
    if field:
        assert next(error["loc"][: len(field)] for error in answer["detail"]) == field
    assert sends(meta) == []
    assert outbound(db) == []


def test_phone_and_email_quick_replies_are_refused_saying_instagram_disabled_them(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    reply = {"content_type": "user_email", "title": "Email", "payload": "EMAIL"}
    response = send(api, anna["id"], {"text": "Your email?", "quick_replies": [reply]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert "disabled on 2026-10-05" in error["msg"]
    assert sends(meta) == []


def test_human_agent_tag_opens_the_7_day_window(
    api: ServiceClient, meta: ServiceClient, db: Session, service: SharedService
) -> None:
    customer = new_customer(meta, username="late")
    customer_writes(
        meta, customer["id"], "hello?", timestamp_ms=int(time.time() * 1000) - 3 * DAY_MS
    )

    untagged = send(api, customer["id"], {"text": "Sorry!"})
    tagged = send(api, customer["id"], {"text": "Sorry!", "tag": "HUMAN_AGENT"})

    assert untagged.status_code == 409
    assert untagged.json()["code"] == "outside_window"
    assert tagged.status_code == 201
    [call] = sends(meta)
    assert (call["body"]["messaging_type"], call["body"]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    # The refused attempt stored nothing; the tagged one is stored as sent.
    [stored] = outbound(db)
    assert (stored.mid, stored.status, stored.text) == (
        call["response"]["message_id"],
        "sent",
        "Sorry!",
    )


def test_past_7_days_even_a_human_agent_is_refused_without_calling_meta(
    api: ServiceClient, meta: ServiceClient, db: Session, service: SharedService
) -> None:
    customer = new_customer(meta, username="gone")
    customer_writes(
        meta, customer["id"], "hello?", timestamp_ms=int(time.time() * 1000) - 8 * DAY_MS
    )

    response = send(api, customer["id"], {"text": "Sorry!", "tag": "HUMAN_AGENT"})

    assert response.status_code == 409
    assert response.json()["code"] == "outside_window"
    assert sends(meta) == []
    assert outbound(db) == []


def test_without_stored_inbound_messages_metas_answer_decides(
    api: ServiceClient, meta: ServiceClient, db: Session, service: SharedService
) -> None:
    stranger = new_customer(meta, username="stranger")  # never wrote: Meta refuses

    response = send(api, stranger["id"], {"text": "hi", "tag": "HUMAN_AGENT"})

    assert response.status_code == 409
    assert len(sends(meta)) == 1
    [failed] = outbound(db)
    assert failed.status == "failed"
    assert failed.error["graph"]["error_subcode"] == 2534022


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (
            {
                "error": {
                    "message": "Calls exceed rate limit",
                    "code": 613,
                    "error_subcode": 2534040,
                }
            },
            429,
            "instagram_rate_limited",
        ),
        (
            {"error": {"message": "Application request limit reached", "code": 4}},
            429,
            "instagram_rate_limited",
        ),
        (
            {"error": {"message": "Invalid OAuth access token", "code": 190, "error_subcode": 463}},
            502,
            "instagram_token_invalid",
        ),
        (
            {"status": 500, "error": {"message": "Service temporarily unavailable", "code": 2}},
            503,
            "instagram_unavailable",
        ),
        (
            {
                "error": {
                    "message": "The requested user cannot be found.",
                    "code": 100,
                    "error_subcode": 2534014,
                }
            },
            404,
            "recipient_not_found",
        ),
        (
            {
                "error": {
                    "message": "The account is temporarily restricted from sending messages",
                    "code": 10,
                    "error_subcode": 1893063,
                }
            },
            403,
            "account_restricted",
        ),
    ],
    ids=["613", "4", "190", "2", "2534014", "1893063"],
)
def test_metas_errors_map_and_the_message_is_stored_as_failed(
    api: ServiceClient,
    meta: ServiceClient,
    db: Session,
    anna: dict,
    fault: dict,
    status: int,
    code: str,
) -> None:
    add_fault(meta, kind="send", **fault)

    response = send(api, anna["id"], {"text": "hi"})

    assert response.status_code == status
    assert response.json()["code"] == code
    if status == 429:
        assert int(response.headers["Retry-After"]) > 0
    [failed] = outbound(db)
    assert failed.status == "failed"
    assert failed.error["graph"]["code"] == fault["error"]["code"]
    page = api.get(f"/api/v1/conversations/{anna['id']}/messages").json()
    shown = next(m for m in page["data"] if m["direction"] == "outbound")
    assert (shown["status"], shown["error"]["code"]) == ("failed", code)


def test_a_hanging_meta_is_a_504_within_the_timeout(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    server = start_service(instagram_read_timeout=0.5, profile_worker_enabled=False)
    add_fault(meta, kind="send", delay_seconds=60)  # until the sandbox's reset
    with ServiceClient(server.url) as client:
        response = send(client, anna["id"], {"text": "hi"})

    assert response.status_code == 504
    assert response.json()["code"] == "instagram_timeout"
    # The service gave up on its own: Meta still has not answered.
    [call] = graph_calls(meta, "send")
    assert call["status_code"] is None
    [failed] = outbound(db)
    assert (failed.status, failed.error["code"]) == ("failed", "instagram_timeout")


# --- idempotency -------------------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_return_the_first_result_without_sending_again(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    first = send(api, anna["id"], {"text": "Once only"}, **{"Idempotency-Key": "order-42"})
    again = send(api, anna["id"], {"text": "Once only"}, **{"Idempotency-Key": "order-42"})

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["mid"] == first.json()["mid"]
    assert len(sends(meta)) == 1
    assert len(outbound(db)) == 1


def test_the_same_key_with_another_body_is_a_422(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    assert send(api, anna["id"], {"text": "one"}, **{"Idempotency-Key": "k"}).status_code == 201

    response = send(api, anna["id"], {"text": "two"}, **{"Idempotency-Key": "k"})

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert len(sends(meta)) == 1
    assert [(m.text, m.status) for m in outbound(db)] == [("one", "sent")]


def test_a_failed_first_attempt_is_repeated_as_the_same_error(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    add_fault(meta, kind="send", error={"message": "Calls exceed rate limit", "code": 613})
    first = send(api, anna["id"], {"text": "hi"}, **{"Idempotency-Key": "k"})

    again = send(api, anna["id"], {"text": "hi"}, **{"Idempotency-Key": "k"})

    assert first.status_code == again.status_code == 429
    assert again.json()["code"] == "instagram_rate_limited"
    assert len(sends(meta)) == 1
    [failed] = outbound(db)
    assert (failed.status, failed.error["code"]) == ("failed", "instagram_rate_limited")


def test_concurrent_requests_with_one_key_send_once(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    meta.put("/_sandbox/config", json={"latency_ms": 200})

    def attempt(_: int) -> int:
        with ServiceClient(api.base_url) as client:
            return send(
                client, anna["id"], {"text": "hi"}, **{"Idempotency-Key": "same"}
            ).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(attempt, range(4)))

    assert 201 in statuses
    assert set(statuses) <= {201, 409}  # 409 idempotency_key_in_progress while the first is sent
    [call] = sends(meta)
    [stored] = outbound(db)
    assert (stored.mid, stored.status) == (call["response"]["message_id"], "sent")


# --- reactions and sender actions --------------------------------------------------------------


def inbound_mid(api: ServiceClient, customer: str) -> str:
    page = api.get(f"/api/v1/conversations/{customer}/messages").json()
    return next(m["mid"] for m in page["data"] if m["direction"] == "inbound")


def test_react_and_unreact_to_a_customers_message(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    mid = inbound_mid(api, anna["id"])

    reacted = api.post(
        f"/api/v1/conversations/{anna['id']}/reactions", json={"mid": mid, "reaction": "love"}
    )

    assert reacted.status_code == 201
    assert (reacted.json()["user_id"], reacted.json()["reaction"]) == (ACCOUNT_ID, "love")
    assert sends(meta)[-1]["body"] == {
        "recipient": {"id": anna["id"]},
        "sender_action": "react",
        "payload": {"message_id": mid, "reaction": "love"},
    }
    shown = api.get(f"/api/v1/messages/{mid}").json()
    assert [(r["user_id"], r["reaction"]) for r in shown["reactions"]] == [(ACCOUNT_ID, "love")]

    removed = api.delete(f"/api/v1/conversations/{anna['id']}/reactions/{mid}")

    assert removed.status_code == 204
    assert sends(meta)[-1]["body"]["sender_action"] == "unreact"
    assert api.get(f"/api/v1/messages/{mid}").json()["reactions"] == []
    db.expire_all()
    stored = db.scalars(select(Reaction).where(Reaction.user_id == ACCOUNT_ID)).one()
    assert stored.reaction is None


def test_reacting_to_an_unknown_or_own_message_is_refused(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    sent = send(api, anna["id"], {"text": "ours"}).json()

    unknown = api.post(f"/api/v1/conversations/{anna['id']}/reactions", json={"mid": "aWdf-nope"})
    own = api.post(f"/api/v1/conversations/{anna['id']}/reactions", json={"mid": sent["mid"]})

    assert (unknown.status_code, unknown.json()["code"]) == (404, "message_not_found")
    assert (own.status_code, own.json()["code"]) == (422, "not_a_customer_message")
    assert len(sends(meta)) == 1  # only the message itself
    assert count_rows(db, Reaction) == 0


def test_reacting_outside_the_window_is_a_409_without_calling_meta(
    api: ServiceClient, meta: ServiceClient, db: Session, service: SharedService
) -> None:
    customer = new_customer(meta, username="late")
    written_at = int(time.time() * 1000) - DAY_MS - 60_000  # 24 hours and a minute ago
    mid = customer_writes(meta, customer["id"], "hello?", timestamp_ms=written_at)["mid"]

    reacted = api.post(
        f"/api/v1/conversations/{customer['id']}/reactions", json={"mid": mid, "reaction": "love"}
    )
    withdrawn = api.delete(f"/api/v1/conversations/{customer['id']}/reactions/{mid}")

    for response in (reacted, withdrawn):
        assert response.status_code == 409
        assert response.json()["code"] == "outside_window"
    assert sends(meta) == []
    assert count_rows(db, Reaction) == 0
    assert api.get(f"/api/v1/messages/{mid}").json()["reactions"] == []


@pytest.mark.parametrize("action", ["typing_on", "typing_off", "mark_seen"])
def test_sender_actions_reach_meta(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict, action: str
) -> None:
    response = api.post(f"/api/v1/conversations/{anna['id']}/actions", json={"action": action})

    assert response.status_code == 204
    [call] = sends(meta)
    assert call["body"] == {"recipient": {"id": anna["id"]}, "sender_action": action}
    assert call["status_code"] == 200
    assert outbound(db) == []  # an action is no message


def test_an_unknown_sender_action_is_a_422(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    response = api.post(f"/api/v1/conversations/{anna['id']}/actions", json={"action": "dance"})

    assert response.status_code == 422
    assert sends(meta) == []


# --- users -------------------------------------------------------------------------------------


def test_a_users_cached_profile_with_status(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    calls = len(graph_calls(meta, "profile"))

    response = api.get(f"/api/v1/users/{anna['id']}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["username"], body["profile_status"]) == (anna["id"], "anna_k", "ok")
    assert body["fetched_at"] is not None
    assert len(graph_calls(meta, "profile")) == calls  # from the cache


def test_refresh_fetches_the_profile_now(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    before = api.get(f"/api/v1/users/{anna['id']}").json()
    calls = len(graph_calls(meta, "profile"))

    refreshed = api.get(f"/api/v1/users/{anna['id']}", params={"refresh": "true"})

    assert refreshed.status_code == 200
    assert len(graph_calls(meta, "profile")) == calls + 1
    assert refreshed.json()["fetched_at"] > before["fetched_at"]


def test_a_user_without_consent_is_a_404(api: ServiceClient, meta: ServiceClient) -> None:
    stranger = new_customer(meta, username="stranger")

    response = api.get(f"/api/v1/users/{stranger['id']}")

    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


def test_refresh_reports_metas_error_instead_of_the_cache(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    add_fault(meta, kind="profile", error={"message": "Calls exceed rate limit", "code": 613})

    response = api.get(f"/api/v1/users/{anna['id']}", params={"refresh": "true"})

    assert response.status_code == 429
    assert response.json()["code"] == "instagram_rate_limited"
    assert graph_calls(meta, "profile")[-1]["status_code"] == 400  # Meta was asked, and refused


def test_a_text_send_reads_the_conversation_once_and_no_media(
    service: SharedService, api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    """The statements of a send to a customer who wrote in: the route and the window come
    from one read of the conversation (with its account's status), and a message without
    attachments asks for no media."""
    meta.put("/_sandbox/config", json={"echo_mode": "off"})  # only the send's statements
    service.pause_workers()
    with StatementCounter(service.app.state.engine) as counted:
        response = send(api, anna["id"], {"text": "Counted"})

    assert response.status_code == 201, response.text
    assert [row.text for row in outbound(db)] == ["Counted"]
    reads = [s for s in counted.statements if s.lstrip().startswith("SELECT")]
    # (The event's snapshot reads its message's conversation columns in subqueries.)
    assert len([s for s in reads if s.startswith("SELECT conversations.")]) == 1
    # Marking it sent returns what the message.sent event's snapshot needs: no read after.
    assert not [s for s in reads if s.startswith("SELECT messages.")]
    assert not [s for s in counted.statements if "FROM media" in s]
    assert not [s for s in reads if "FROM accounts" in s]  # its status came with the route
