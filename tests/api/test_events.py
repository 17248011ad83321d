"""Every messaging event Instagram sends, applied once, in any order (graph-api.md §3).

The example payloads tell one story: `message_edit` edits the text.json message,
`unsend_is_deleted` removes the image.json message, and `reply_to_message`, `reaction_*` and
`seen` point at the business message of echo_text.json.
"""

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Conversation, Message, Reaction, User, WebhookDelivery
from app.repositories import users
from tests.helpers import (
    ACCOUNT_ID,
    CUSTOMER_ID,
    ServiceClient,
    count_rows,
    example,
    example_bytes,
)
from tests.stack import SharedService


def item_of(name: str) -> dict[str, Any]:
    return example(name)["entry"][0]["messaging"][0]


def at(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


def with_item(name: str, **changes: Any) -> dict[str, Any]:
    """An example delivery whose item's event object has some fields changed."""
    payload = copy.deepcopy(example(name))
    item = payload["entry"][0]["messaging"][0]
    timestamp = changes.pop("timestamp", None)
    if timestamp is not None:
        item["timestamp"] = timestamp
    for key in ("message", "message_edit", "reaction", "read", "postback", "referral"):
        if key in item:
            item[key].update(changes)
    return payload


def conversation(db: Session) -> Conversation:
    db.expire_all()
    return db.scalars(select(Conversation)).one()


def message(db: Session, mid: str) -> Message:
    db.expire_all()
    return db.scalars(select(Message).where(Message.mid == mid)).one()


TEXT_MID = item_of("text")["message"]["mid"]
ECHO_MID = item_of("echo_text")["message"]["mid"]


# --- message_edit ---------------------------------------------------------------------------


def test_an_edit_replaces_the_text_and_counts(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200
    assert api.deliver(example_bytes("message_edit")).status_code == 200

    edited = message(db, TEXT_MID)
    assert (edited.text, edited.edit_count) == ("Hi! Do you ship to Munich?", 1)
    assert edited.edited_at == at(item_of("message_edit")["timestamp"])
    assert edited.sent_at == at(item_of("text")["timestamp"])


def test_an_older_edit_never_overwrites_a_newer_one(api: ServiceClient, db: Session) -> None:
    second = with_item("message_edit", text="second edit", num_edit=2, timestamp=1745923829000)
    assert api.deliver(example_bytes("text")).status_code == 200
    assert api.deliver(second).status_code == 200
    assert api.deliver(example_bytes("message_edit")).status_code == 200  # num_edit 1, late

    edited = message(db, TEXT_MID)
    assert (edited.text, edited.edit_count) == ("second edit", 2)


def test_an_edit_before_its_message_ends_as_if_in_order(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("message_edit")).status_code == 200
    placeholder = message(db, TEXT_MID)
    assert placeholder.is_placeholder is True

    assert api.deliver(example_bytes("text")).status_code == 200

    edited = message(db, TEXT_MID)
    assert edited.is_placeholder is False
    assert (edited.text, edited.edit_count) == ("Hi! Do you ship to Munich?", 1)
    assert edited.sent_at == at(item_of("text")["timestamp"])
    assert conversation(db).last_message_at == at(item_of("text")["timestamp"])


def test_num_edit_as_a_string_is_accepted(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200
    assert api.deliver(with_item("message_edit", num_edit="1")).status_code == 200

    assert message(db, TEXT_MID).edit_count == 1


# --- unsend ---------------------------------------------------------------------------------


def test_an_edit_after_an_unsend_does_not_bring_the_text_back(
    api: ServiceClient, db: Session
) -> None:
    unsend = with_item("unsend_is_deleted", mid=TEXT_MID)
    for body in (example_bytes("text"), unsend, example_bytes("message_edit")):
        assert api.deliver(body).status_code == 200

    gone = message(db, TEXT_MID)
    assert (gone.is_deleted, gone.text) == (True, None)
    assert gone.deleted_at == at(item_of("unsend_is_deleted")["timestamp"])


def test_an_unsend_neither_moves_the_window_nor_the_last_message(
    api: ServiceClient, db: Session
) -> None:
    assert api.deliver(example_bytes("image")).status_code == 200
    before = conversation(db)

    assert api.deliver(example_bytes("unsend_is_deleted")).status_code == 200

    after = conversation(db)
    assert (after.last_inbound_at, after.last_message_at) == (
        before.last_inbound_at,
        before.last_message_at,
    )


# --- reactions ------------------------------------------------------------------------------


def test_a_reaction_is_stored_per_user_and_message(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("echo_text")).status_code == 200
    assert api.deliver(example_bytes("reaction_react")).status_code == 200

    reaction = db.scalars(select(Reaction)).one()
    assert (reaction.mid, reaction.user_id) == (ECHO_MID, CUSTOMER_ID)
    assert (reaction.reaction, reaction.emoji) == ("love", "\u2764\ufe0f")
    assert reaction.reacted_at == at(item_of("reaction_react")["timestamp"])


def test_unreact_withdraws_the_reaction(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("reaction_react")).status_code == 200
    assert api.deliver(example_bytes("reaction_unreact")).status_code == 200

    reaction = db.scalars(select(Reaction)).one()
    assert (reaction.reaction, reaction.emoji) == (None, None)


def test_a_new_reaction_replaces_the_old_one(api: ServiceClient, db: Session) -> None:
    laugh = with_item(
        "reaction_react", reaction="laugh", emoji="\U0001f606", timestamp=1745923829500
    )
    assert api.deliver(example_bytes("reaction_react")).status_code == 200
    assert api.deliver(laugh).status_code == 200

    reaction = db.scalars(select(Reaction)).one()
    assert reaction.reaction == "laugh"


def test_reactions_in_reverse_order_end_as_in_order(api: ServiceClient, db: Session) -> None:
    # The unreact (later) arrives first; the react (earlier) arriving late must not win.
    assert api.deliver(example_bytes("reaction_unreact")).status_code == 200
    assert api.deliver(example_bytes("reaction_react")).status_code == 200

    reaction = db.scalars(select(Reaction)).one()
    assert reaction.reaction is None
    assert reaction.reacted_at == at(item_of("reaction_unreact")["timestamp"])


def test_a_reaction_moves_no_conversation_clock(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200
    before = conversation(db)

    assert api.deliver(example_bytes("reaction_react")).status_code == 200

    after = conversation(db)
    assert (after.last_inbound_at, after.last_message_at) == (
        before.last_inbound_at,
        before.last_message_at,
    )


# --- read -----------------------------------------------------------------------------------


def test_read_records_what_the_customer_has_seen(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200
    inbound_at = conversation(db).last_inbound_at

    assert api.deliver(example_bytes("seen")).status_code == 200

    seen = conversation(db)
    assert seen.customer_read_mid == ECHO_MID
    assert seen.customer_read_at == at(item_of("seen")["timestamp"])
    assert seen.last_inbound_at == inbound_at  # a read never opens the window


def test_an_older_read_never_moves_the_watermark_back(api: ServiceClient, db: Session) -> None:
    older = with_item("seen", mid="aWdf-older-mid", timestamp=1745923000000)
    assert api.deliver(example_bytes("seen")).status_code == 200
    assert api.deliver(older).status_code == 200

    seen = conversation(db)
    assert seen.customer_read_mid == ECHO_MID
    assert seen.customer_read_at == at(item_of("seen")["timestamp"])


def test_a_messenger_style_watermark_is_accepted(api: ServiceClient, db: Session) -> None:
    payload = copy.deepcopy(example("seen"))
    payload["entry"][0]["messaging"][0]["read"] = {"watermark": 1745923830000}

    assert api.deliver(payload).status_code == 200

    seen = conversation(db)
    assert seen.customer_read_at == at(1745923830000)
    assert seen.customer_read_mid is None


# --- postback and referral ------------------------------------------------------------------


def test_a_postback_is_the_customers_message_and_opens_the_window(
    api: ServiceClient, db: Session
) -> None:
    assert api.deliver(example_bytes("postback_icebreaker")).status_code == 200

    sent = item_of("postback_icebreaker")
    tap = message(db, sent["postback"]["mid"])
    assert (tap.text, tap.postback_payload, tap.direction) == (
        "What are your opening hours?",
        "ICEBREAKER_HOURS",
        "inbound",
    )
    assert conversation(db).last_inbound_at == at(sent["timestamp"])
    history = api.get("/messages", params={"user_id": CUSTOMER_ID}).json()
    assert history[-1]["text"] == "What are your opening hours?"


def test_a_postback_keeps_its_ig_me_referral(api: ServiceClient, db: Session) -> None:
    referral = {"ref": "spring_sale_2025", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    assert api.deliver(with_item("postback_icebreaker", referral=referral)).status_code == 200

    assert message(db, item_of("postback_icebreaker")["postback"]["mid"]).referral == referral


def test_a_referral_in_an_existing_thread_is_remembered_and_refreshes_the_window(
    api: ServiceClient, db: Session
) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200
    assert api.deliver(example_bytes("referral_igme_existing_thread")).status_code == 200

    sent = item_of("referral_igme_existing_thread")
    thread = conversation(db)
    assert thread.last_referral == sent["referral"]
    assert thread.last_referral_at == at(sent["timestamp"])
    assert thread.last_inbound_at == at(sent["timestamp"])
    assert db.scalars(select(Message)).one().mid == TEXT_MID  # no message row for a referral


def test_an_older_referral_does_not_replace_a_newer_one(api: ServiceClient, db: Session) -> None:
    older = copy.deepcopy(example("referral_igme_existing_thread"))
    older["entry"][0]["messaging"][0]["timestamp"] = 1745923000000
    older["entry"][0]["messaging"][0]["referral"] = {"ref": "old", "source": "SHORTLINK"}
    assert api.deliver(example_bytes("referral_igme_existing_thread")).status_code == 200
    assert api.deliver(older).status_code == 200

    assert conversation(db).last_referral["ref"] == "spring_sale_2025"


# --- the window -----------------------------------------------------------------------------


def test_the_window_never_moves_backwards(api: ServiceClient, db: Session) -> None:
    newer = with_item("text", mid="m-newer", text="later", timestamp=1745923900000)
    assert api.deliver(newer).status_code == 200
    assert api.deliver(example_bytes("text")).status_code == 200  # older, delivered late

    thread = conversation(db)
    assert thread.last_inbound_at == at(1745923900000)
    assert thread.last_message_at == at(1745923900000)


def test_echoes_never_move_the_window(api: ServiceClient, db: Session) -> None:
    assert api.deliver(example_bytes("echo_text")).status_code == 200

    thread = conversation(db)
    assert thread.last_inbound_at is None
    assert thread.last_message_at == at(item_of("echo_text")["timestamp"])


# --- profiles off the webhook path ----------------------------------------------------------


def test_a_new_customer_is_queued_for_a_profile_fetch(
    quiet_service: SharedService, db: Session
) -> None:
    with ServiceClient(quiet_service.url) as client:
        assert client.deliver(example_bytes("text")).status_code == 200

    for user_id in (CUSTOMER_ID, ACCOUNT_ID):
        user = db.get(User, user_id)
        assert user is not None
        assert user.profile_status == "pending"
        assert user.profile_due_at is not None
        assert user.profile_due_at <= datetime.now(UTC)


def test_a_customer_who_refused_consent_is_asked_again_once_they_write(
    quiet_service: SharedService, db: Session
) -> None:
    refused_at = datetime(2025, 4, 29, 10, 0, tzinfo=UTC)  # before the examples' messages
    db.add(User(id=CUSTOMER_ID, profile_status="consent_required", fetched_at=refused_at))
    db.commit()

    def fetcher_round() -> str:
        users.ask_again_after_consent(db, now=datetime.now(UTC))
        db.commit()
        db.expire_all()
        return db.get(User, CUSTOMER_ID).profile_status

    with ServiceClient(quiet_service.url) as client:
        assert client.deliver(example_bytes("echo_text")).status_code == 200
        assert fetcher_round() == "consent_required"  # the business wrote, not the customer
        assert client.deliver(example_bytes("text")).status_code == 200

    assert fetcher_round() == "pending"
    assert db.get(User, CUSTOMER_ID).profile_due_at is not None


@pytest.mark.parametrize(
    ("name", "messages"),
    # two_entries_one_delivery: its second account is not served (its entry is kept pending).
    [("text", 1), ("two_entries_one_delivery", 1), ("postback_icebreaker", 1)],
)
def test_the_webhook_path_never_calls_the_graph_api(
    quiet_service: SharedService, meta: ServiceClient, db: Session, name: str, messages: int
) -> None:
    with ServiceClient(quiet_service.url) as client:
        assert client.deliver(example_bytes(name)).status_code == 200

    assert meta.get("/_sandbox/calls").json() == []
    assert count_rows(db, Message) == messages  # stored all the same


def test_every_example_payload_is_applied_without_failures(api: ServiceClient, db: Session) -> None:
    names = [
        "text",
        "two_messaging_items_one_entry",
        "two_entries_one_delivery",
        "image",
        "multiple_attachments",
        "audio_voice_note",
        "story_mention",
        "story_reply",
        "share_post",
        "ig_reel",
        "reply_to_message",
        "quick_reply",
        "echo_text",
        "echo_image_sent_via_api",
        "unsend_is_deleted",
        "unsupported",
        "message_edit",
        "reaction_react",
        "reaction_unreact",
        "seen",
        "postback_icebreaker",
        "referral_igme_existing_thread",
        "referral_ad_first_message",
        "standby",
        "dashboard_test_changes_form",
    ]
    for name in names:
        assert api.deliver(example_bytes(name)).status_code == 200, name

    statuses = {d.status for d in db.scalars(select(WebhookDelivery))}
    assert statuses == {"applied"}
    assert len(db.scalars(select(WebhookDelivery)).all()) == len(names)


def test_a_delivery_applied_twice_changes_nothing(api: ServiceClient, db: Session) -> None:
    names = ["text", "message_edit", "reaction_react", "seen", "postback_icebreaker"]
    for name in names:
        assert api.deliver(example_bytes(name)).status_code == 200
    snapshot = _state(db)

    for name in names:
        assert api.deliver(example_bytes(name)).status_code == 200

    assert _state(db) == snapshot


def _state(db: Session) -> tuple:
    db.expire_all()
    return (
        sorted((m.mid, m.text, m.edit_count, m.is_deleted) for m in db.scalars(select(Message))),
        sorted((r.mid, r.user_id, r.reaction) for r in db.scalars(select(Reaction))),
        [
            (c.last_inbound_at, c.last_message_at, c.customer_read_at)
            for c in db.scalars(select(Conversation))
        ],
    )


def test_timestamps_a_day_apart_still_compare_in_time_order(
    api: ServiceClient, db: Session
) -> None:
    day = int(timedelta(days=1).total_seconds() * 1000)
    assert (
        api.deliver(with_item("text", mid="m-1", timestamp=1745923812000 + day)).status_code == 200
    )
    assert api.deliver(with_item("text", mid="m-2", timestamp=1745923812000)).status_code == 200

    assert conversation(db).last_inbound_at == at(1745923812000 + day)


def test_the_sandbox_drives_every_event_end_to_end(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    customer = meta.post("/_sandbox/customers", json={"username": "eve"}).json()["id"]

    def customer_does(route: str, **body: Any) -> dict[str, Any]:
        response = meta.post(f"/_sandbox/customers/{customer}/{route}", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["delivery"]["status_code"] == 200
        return response.json()

    question = customer_does("messages", text="Is it in stock?")["mid"]
    reply = api.post(
        "/message/send", params={"user_id": customer}, json={"message": {"text": "Yes!"}}
    )
    assert reply.status_code == 200
    answer = reply.json()["message_id"]
    customer_does("edits", mid=question, text="Is it in stock in M?")
    customer_does("reactions", mid=answer, reaction="love")
    customer_does("reads", mid=answer)
    tap = customer_does("postbacks", title="Opening hours", payload="HOURS")["mid"]
    customer_does("referrals", ref="spring")
    customer_does("story-replies", text="Love this!")
    customer_does("story-mentions")
    photo = customer_does("messages", attachments=[{"type": "image"}])["mid"]
    customer_does("unsend", mid=photo)
    customer_does("messages", text="Can I talk to a person?", standby=True)
    customer_does("messages", is_unsupported=True)

    db.expire_all()
    assert {d.status for d in db.scalars(select(WebhookDelivery))} == {"applied"}
    assert message(db, question).text == "Is it in stock in M?"
    assert db.scalars(select(Reaction)).one().mid == answer
    thread = conversation(db)
    assert (thread.customer_read_mid, thread.last_referral["ref"]) == (answer, "spring")
    assert message(db, tap).postback_payload == "HOURS"
    assert message(db, photo).is_deleted is True
    texts = [m["text"] for m in api.get("/messages", params={"user_id": customer}).json()]
    assert texts == [
        "Is it in stock in M?",
        "Yes!",
        "Opening hours",
        "Love this!",
        "[story_mention]",
        "[deleted]",
        "Can I talk to a person?",
        "[unsupported message]",
    ]
