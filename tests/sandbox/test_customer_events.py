"""Every messaging event a customer can cause reaches the service shaped like Meta's examples."""

from collections.abc import Callable
from typing import Any

import pytest

from app.sandbox.clock import now_ms
from app.sandbox.webhooks import (
    account_entry,
    batch,
    delivery,
    echo_item,
    edit_item,
    encode,
    message_item,
    postback_item,
    reaction_item,
    read_item,
    referral_item,
    unsend_item,
)
from tests.helpers import example
from tests.sandbox.conftest import ACCOUNT_ID, WebhookReceiver, signed_json

MID_PREFIX = "aWdfZAG1faXRlbToxOklHTWVzc2FnZA"
CDN_PREFIX = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id="
HOUR_MS = 60 * 60 * 1000
DELIVERED = {"status_code": 200, "body": "EVENT_RECEIVED", "error": None}
ITEM_KEYS = {"sender", "recipient", "timestamp"}

# A valid body for every customer-event route.
MINIMAL_BODIES = {
    "messages": {"text": "Hi"},
    "story-mentions": {},
    "story-replies": {"text": "Nice!"},
    "reactions": {"mid": "aWdf…ZDZD", "reaction": "love"},
    "unsend": {"mid": "aWdf…ZDZD"},
    "edits": {"mid": "aWdf…ZDZD", "text": "Hi again"},
    "reads": {"mid": "aWdf…ZDZD"},
    "postbacks": {"title": "Opening hours?", "payload": "HOURS"},
    "referrals": {"ref": "spring_sale"},
}


def only_entry(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The single entry of a delivery and the key its items sit under."""
    [entry] = payload["entry"]
    [channel] = {"messaging", "standby"} & entry.keys()
    return entry, channel


def example_item(name: str) -> tuple[dict[str, Any], bool]:
    """The single messaging item of an example and whether it is in standby."""
    entry, channel = only_entry(example(name))
    [item] = entry[channel]
    return item, channel == "standby"


def event_of(item: dict[str, Any]) -> dict[str, Any]:
    """What a messaging item is about: its `message`, `reaction`, `read`… object."""
    [key] = item.keys() - ITEM_KEYS
    return item[key]


def assert_delivered_like(
    name: str,
    *,
    result: dict[str, Any],
    receiver: WebhookReceiver,
    customer_id: str,
    generated: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one delivery is signed, is what the route returned and is the example `name`.

    The example's account, customer and entry time become this test's; values the sandbox
    generates (a new mid, CDN URLs) are taken from `generated`. Returns the delivered event.
    """
    [webhook] = receiver.wait_for(1)
    payload = signed_json(webhook)
    assert webhook.body == encode(result["payload"])
    assert result["delivery"] == DELIVERED
    entry, channel = only_entry(payload)
    assert isinstance(entry["time"], int)
    assert abs(entry["time"] - now_ms()) < 60_000

    expected = example(name)
    expected_entry, expected_channel = only_entry(expected)
    expected_entry.update(id=ACCOUNT_ID, time=entry["time"])
    [expected_item] = expected_entry[expected_channel]
    expected_item.update(sender={"id": customer_id}, recipient={"id": ACCOUNT_ID})
    event_of(expected_item).update(generated or {})
    assert payload == expected
    return event_of(entry[channel][0])


def assert_new_mid(mid: str) -> None:
    assert mid.startswith(MID_PREFIX)
    assert mid.endswith("ZDZD")


# Messages


MESSAGE_EXAMPLES = [
    "text",
    "image",
    "multiple_attachments",
    "audio_voice_note",
    "story_mention",
    "story_reply",
    "share_post",
    "ig_reel",
    "reply_to_message",
    "quick_reply",
    "unsupported",
    "referral_ad_first_message",
    "standby",
]


@pytest.mark.parametrize("name", MESSAGE_EXAMPLES)
def test_message_is_delivered_like_the_example(sandbox, receiver, name):
    customer = sandbox.create_customer()
    item, standby = example_item(name)
    # What the example's message holds, as the route takes it (attachments verbatim).
    body = {key: value for key, value in item["message"].items() if key != "mid"}

    result = sandbox.customer_event(
        customer["id"], "messages", timestamp_ms=item["timestamp"], standby=standby, **body
    )

    assert_new_mid(result["mid"])
    assert_delivered_like(
        name,
        result=result,
        receiver=receiver,
        customer_id=customer["id"],
        generated={"mid": result["mid"]},
    )
    stored = sandbox.control("GET", f"/customers/{customer['id']}").json()
    assert stored["consented"] is True
    assert stored["last_inbound_ms"] == item["timestamp"]


def test_story_mention_shortcut_is_a_message_with_a_cdn_url(sandbox, receiver):
    customer = sandbox.create_customer()
    item, _ = example_item("story_mention")

    result = sandbox.customer_event(
        customer["id"], "story-mentions", timestamp_ms=item["timestamp"]
    )

    [attachment] = result["payload"]["entry"][0]["messaging"][0]["message"]["attachments"]
    url = attachment["payload"]["url"]
    # A file on the sandbox's own CDN (Meta's: lookaside.fbsbx.com).
    assert url.startswith(f"{sandbox.url}/ig_messaging_cdn/?asset_id=")
    delivered = assert_delivered_like(
        "story_mention",
        result=result,
        receiver=receiver,
        customer_id=customer["id"],
        generated={"mid": result["mid"], "attachments": [attachment]},
    )
    assert delivered["attachments"][0]["type"] == "story_mention"


def test_story_mention_needs_no_body(sandbox, receiver):
    customer = sandbox.create_customer()
    response = sandbox.control("POST", f"/customers/{customer['id']}/story-mentions")
    assert response.status_code == 201, response.text
    assert receiver.wait_for(1)[0].body == encode(response.json()["payload"])


def test_story_reply_shortcut_replies_to_a_story(sandbox, receiver):
    customer = sandbox.create_customer()
    item, _ = example_item("story_reply")
    story_id = item["message"]["reply_to"]["story"]["id"]

    result = sandbox.customer_event(
        customer["id"],
        "story-replies",
        text=item["message"]["text"],
        story_id=story_id,
        timestamp_ms=item["timestamp"],
    )

    reply_to = result["payload"]["entry"][0]["messaging"][0]["message"]["reply_to"]
    assert reply_to["story"]["url"].startswith(CDN_PREFIX)
    assert_delivered_like(
        "story_reply",
        result=result,
        receiver=receiver,
        customer_id=customer["id"],
        generated={"mid": result["mid"], "reply_to": reply_to},
    )


def test_story_reply_without_story_id_gets_a_new_one(sandbox):
    customer = sandbox.create_customer()
    result = sandbox.customer_event(customer["id"], "story-replies", text="Hi", deliver=False)
    story = result["payload"]["entry"][0]["messaging"][0]["message"]["reply_to"]["story"]
    assert story["id"].isdigit()
    assert len(story["id"]) == 17


# Reactions, unsends, edits, reads


@pytest.mark.parametrize(
    ("name", "body_keys"),
    [("reaction_react", {"mid", "reaction"}), ("reaction_unreact", {"mid", "action"})],
)
def test_reaction_is_delivered_like_the_example(sandbox, receiver, name, body_keys):
    customer = sandbox.messaged_customer()
    item, _ = example_item(name)
    body = {key: item["reaction"][key] for key in body_keys}  # the emoji comes by default

    result = sandbox.customer_event(
        customer["id"], "reactions", timestamp_ms=item["timestamp"], **body
    )

    assert result["mid"] == item["reaction"]["mid"]
    assert_delivered_like(name, result=result, receiver=receiver, customer_id=customer["id"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"reaction": "like"}, {"reaction": "like", "emoji": "\U0001f44d"}),
        ({"reaction": "laugh"}, {"reaction": "laugh", "emoji": "\U0001f606"}),
        ({"reaction": "wow"}, {"reaction": "wow", "emoji": "\U0001f62e"}),
        ({"reaction": "sad"}, {"reaction": "sad", "emoji": "\U0001f622"}),
        ({"reaction": "angry"}, {"reaction": "angry", "emoji": "\U0001f621"}),
        ({"reaction": "other"}, {"reaction": "other"}),
        (
            {"reaction": "other", "emoji": "\U0001f525"},
            {"reaction": "other", "emoji": "\U0001f525"},
        ),
        ({"reaction": "love", "emoji": "\U0001f60d"}, {"reaction": "love", "emoji": "\U0001f60d"}),
    ],
)
def test_reaction_emoji_defaults_to_metas_for_the_name(sandbox, body, expected):
    customer = sandbox.create_customer()
    result = sandbox.customer_event(
        customer["id"], "reactions", mid="aWdf…ZDZD", deliver=False, **body
    )
    reaction = result["payload"]["entry"][0]["messaging"][0]["reaction"]
    assert reaction == {"mid": "aWdf…ZDZD", "action": "react", **expected}


def test_unsend_is_delivered_like_the_example(sandbox, receiver):
    customer = sandbox.messaged_customer()
    item, _ = example_item("unsend_is_deleted")

    result = sandbox.customer_event(
        customer["id"], "unsend", mid=item["message"]["mid"], timestamp_ms=item["timestamp"]
    )

    assert_delivered_like(
        "unsend_is_deleted", result=result, receiver=receiver, customer_id=customer["id"]
    )


def test_edit_is_delivered_like_the_example(sandbox, receiver):
    customer = sandbox.messaged_customer()
    item, _ = example_item("message_edit")
    edit = item["message_edit"]

    result = sandbox.customer_event(
        customer["id"], "edits", mid=edit["mid"], text=edit["text"], timestamp_ms=item["timestamp"]
    )

    assert result["num_edit"] == 1
    assert_delivered_like(
        "message_edit", result=result, receiver=receiver, customer_id=customer["id"]
    )


def test_edits_are_numbered_per_message(sandbox):
    customer = sandbox.messaged_customer()

    def edit(mid: str, **body: Any) -> int:
        result = sandbox.customer_event(
            customer["id"], "edits", mid=mid, text="new text", deliver=False, **body
        )
        delivered = result["payload"]["entry"][0]["messaging"][0]["message_edit"]
        assert delivered["num_edit"] == result["num_edit"]
        return result["num_edit"]

    numbers = [edit("mid-a"), edit("mid-a"), edit("mid-b"), edit("mid-a", num_edit=5)]

    assert numbers == [1, 2, 1, 5]
    assert edit("mid-a") == 6  # counting goes on from a given number
    sandbox.control("POST", "/reset")
    customer = sandbox.create_customer()
    assert edit("mid-a") == 1  # reset forgets the counts


def test_read_is_delivered_like_the_example(sandbox, receiver):
    customer = sandbox.messaged_customer()
    item, _ = example_item("seen")

    result = sandbox.customer_event(
        customer["id"], "reads", mid=item["read"]["mid"], timestamp_ms=item["timestamp"]
    )

    assert result["mid"] == item["read"]["mid"]
    assert_delivered_like("seen", result=result, receiver=receiver, customer_id=customer["id"])


def test_read_defaults_to_the_newest_message_the_business_sent(sandbox):
    customer = sandbox.messaged_customer()
    other = sandbox.messaged_customer()
    sandbox.set_config(echo_mode="off")

    def send(recipient: str, text: str) -> str:
        response = sandbox.send({"recipient": {"id": recipient}, "message": {"text": text}})
        return response.json()["message_id"]

    send(customer["id"], "first")
    newest = send(customer["id"], "second")
    send(other["id"], "for someone else")
    sandbox.send({"recipient": {"id": customer["id"]}, "sender_action": "typing_on"})

    result = sandbox.customer_event(customer["id"], "reads", deliver=False)

    assert result["mid"] == newest
    assert result["payload"]["entry"][0]["messaging"][0]["read"] == {"mid": newest}


def test_read_with_a_watermark(sandbox):
    customer = sandbox.messaged_customer()
    watermark = now_ms() - 1000

    result = sandbox.customer_event(customer["id"], "reads", watermark=watermark, deliver=False)

    assert result["watermark"] == watermark
    assert result["mid"] is None
    assert result["payload"]["entry"][0]["messaging"][0]["read"] == {"watermark": watermark}


def test_read_with_nothing_sent_is_422(sandbox):
    customer = sandbox.messaged_customer()
    response = sandbox.control("POST", f"/customers/{customer['id']}/reads", json={})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert customer["id"] in response.json()["detail"]


@pytest.mark.parametrize("route", ["reactions", "unsend", "edits", "reads"])
def test_events_about_messages_open_no_window(sandbox, route):
    customer = sandbox.create_customer()

    sandbox.customer_event(customer["id"], route, deliver=False, **MINIMAL_BODIES[route])

    stored = sandbox.control("GET", f"/customers/{customer['id']}").json()
    assert stored["consented"] is False
    assert stored["last_inbound_ms"] is None


# Postbacks and referrals


def test_postback_is_delivered_like_the_example(sandbox, receiver):
    customer = sandbox.create_customer()
    item, _ = example_item("postback_icebreaker")
    postback = item["postback"]

    result = sandbox.customer_event(
        customer["id"],
        "postbacks",
        title=postback["title"],
        payload=postback["payload"],
        timestamp_ms=item["timestamp"],
    )

    assert_new_mid(result["mid"])
    assert_delivered_like(
        "postback_icebreaker",
        result=result,
        receiver=receiver,
        customer_id=customer["id"],
        generated={"mid": result["mid"]},
    )


def test_postback_carries_the_referral_of_a_new_thread(sandbox):
    customer = sandbox.create_customer()
    referral = {"ref": "spring_sale_2025", "source": "SHORTLINK", "type": "OPEN_THREAD"}

    result = sandbox.customer_event(
        customer["id"], "postbacks", deliver=False, referral=referral, **MINIMAL_BODIES["postbacks"]
    )

    postback = result["payload"]["entry"][0]["messaging"][0]["postback"]
    assert postback == {
        "mid": result["mid"],
        "title": "Opening hours?",
        "payload": "HOURS",
        "referral": referral,
    }


def test_postback_gives_consent_and_opens_the_window(sandbox):
    customer = sandbox.create_customer()
    body = {"recipient": {"id": customer["id"]}, "message": {"text": "We open at 9"}}
    assert sandbox.send(body).status_code == 403

    sandbox.customer_event(
        customer["id"], "postbacks", deliver=False, **MINIMAL_BODIES["postbacks"]
    )

    assert sandbox.send(body).status_code == 200
    profile = sandbox.graph("GET", f"/{customer['id']}", params={"fields": "username"})
    assert profile.status_code == 200


def test_referral_is_delivered_like_the_example(sandbox, receiver):
    customer = sandbox.messaged_customer()
    item, _ = example_item("referral_igme_existing_thread")

    result = sandbox.customer_event(
        customer["id"], "referrals", ref=item["referral"]["ref"], timestamp_ms=item["timestamp"]
    )

    assert_delivered_like(
        "referral_igme_existing_thread",
        result=result,
        receiver=receiver,
        customer_id=customer["id"],
    )


def test_referral_passes_ad_fields_through(sandbox):
    customer = sandbox.messaged_customer()
    ad = example_item("referral_ad_first_message")[0]["message"]["referral"]

    result = sandbox.customer_event(customer["id"], "referrals", deliver=False, **ad)

    assert result["payload"]["entry"][0]["messaging"][0]["referral"] == ad


def test_referral_reopens_the_window(sandbox):
    customer = sandbox.create_customer()
    sandbox.customer_writes(customer["id"], timestamp_ms=now_ms() - 25 * HOUR_MS, deliver=False)
    body = {"recipient": {"id": customer["id"]}, "message": {"text": "Spring sale!"}}
    assert sandbox.send(body).status_code == 403

    sandbox.customer_event(customer["id"], "referrals", deliver=False, ref="spring_sale")

    assert sandbox.send(body).status_code == 200


# Every route


@pytest.mark.parametrize("route", MINIMAL_BODIES)
def test_every_event_can_go_to_standby(sandbox, receiver, route):
    customer = sandbox.create_customer()

    result = sandbox.customer_event(customer["id"], route, standby=True, **MINIMAL_BODIES[route])

    [webhook] = receiver.wait_for(1)
    payload = signed_json(webhook)
    assert payload == result["payload"]
    entry, channel = only_entry(payload)
    assert channel == "standby"
    assert "messaging" not in entry
    [item] = entry["standby"]
    assert item["sender"] == {"id": customer["id"]}
    assert item["recipient"] == {"id": ACCOUNT_ID}


def test_postback_in_standby_comes_without_its_payload(sandbox):
    customer = sandbox.create_customer()
    result = sandbox.customer_event(
        customer["id"], "postbacks", standby=True, deliver=False, **MINIMAL_BODIES["postbacks"]
    )
    postback = result["payload"]["entry"][0]["standby"][0]["postback"]
    assert postback == {"mid": result["mid"], "title": "Opening hours?"}


@pytest.mark.parametrize("route", MINIMAL_BODIES)
def test_deliver_false_only_builds_the_payload(sandbox, receiver, route):
    customer = sandbox.create_customer()

    result = sandbox.customer_event(customer["id"], route, deliver=False, **MINIMAL_BODIES[route])

    assert result["delivery"] is None
    [item] = only_entry(result["payload"])[0]["messaging"]
    assert abs(item["timestamp"] - now_ms()) < 60_000  # default: now
    assert receiver.deliveries == []


@pytest.mark.parametrize("route", MINIMAL_BODIES)
def test_events_of_unknown_customers_are_404(sandbox, route):
    response = sandbox.control(
        "POST", f"/customers/1000000000000000/{route}", json=MINIMAL_BODIES[route]
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("messages", {}),
        ("messages", {"is_unsupported": True, "text": "Hi"}),
        ("messages", {"text": "Hi", "standby": "maybe"}),
        ("messages", {"text": "Hi", "timestamp_ms": 0}),
        ("story-replies", {}),
        ("story-replies", {"text": "Hi", "story_id": "abc"}),
        ("reactions", {"reaction": "love"}),
        ("reactions", {"mid": "m"}),
        ("reactions", {"mid": "m", "reaction": "hug"}),
        ("reactions", {"mid": "m", "action": "like"}),
        ("reactions", {"mid": "m", "action": "unreact", "reaction": "love"}),
        ("unsend", {}),
        ("edits", {"mid": "m"}),
        ("edits", {"mid": "m", "text": "new", "num_edit": 0}),
        ("reads", {"mid": "m", "watermark": 1}),
        ("postbacks", {"title": "Hours?"}),
        ("referrals", {}),
        ("referrals", {"ref": "x", "ad_id": "not-digits"}),
    ],
)
def test_malformed_event_bodies_are_422(sandbox, receiver, route, body):
    customer = sandbox.create_customer()
    response = sandbox.control("POST", f"/customers/{customer['id']}/{route}", json=body)
    assert response.status_code == 422, response.text
    assert receiver.deliveries == []


# Builders


def customer_ids(item: dict[str, Any]) -> dict[str, Any]:
    """The ids and time a builder needs to rebuild a customer's item."""
    return {
        "customer_id": item["sender"]["id"],
        "account_id": item["recipient"]["id"],
        "timestamp_ms": item["timestamp"],
    }


def echo_ids(item: dict[str, Any]) -> dict[str, Any]:
    """The same for an echo, where the business is the sender."""
    return {
        "account_id": item["sender"]["id"],
        "customer_id": item["recipient"]["id"],
        "timestamp_ms": item["timestamp"],
    }


ItemBuild = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]

# How each example's item is rebuilt from its own values: (item, event) -> item.
BUILDS: dict[str, ItemBuild] = {
    **{
        name: lambda item, message: message_item(**customer_ids(item), **message)
        for name in MESSAGE_EXAMPLES
    },
    "unsend_is_deleted": lambda item, event: unsend_item(**customer_ids(item), mid=event["mid"]),
    "reaction_react": lambda item, event: reaction_item(
        **customer_ids(item), mid=event["mid"], reaction=event["reaction"]
    ),
    "reaction_unreact": lambda item, event: reaction_item(
        **customer_ids(item), mid=event["mid"], action="unreact"
    ),
    "message_edit": lambda item, event: edit_item(**customer_ids(item), **event),
    "seen": lambda item, event: read_item(**customer_ids(item), **event),
    "postback_icebreaker": lambda item, event: postback_item(**customer_ids(item), **event),
    "referral_igme_existing_thread": lambda item, event: referral_item(
        **customer_ids(item), referral=event
    ),
    "echo_text": lambda item, event: echo_item(
        **echo_ids(item), mid=event["mid"], text=event["text"]
    ),
    "echo_image_sent_via_api": lambda item, event: echo_item(
        **echo_ids(item), mid=event["mid"], attachments=event["attachments"]
    ),
}


@pytest.mark.parametrize("name", BUILDS)
def test_builders_reproduce_the_example(name):
    payload = example(name)
    entry, channel = only_entry(payload)
    [item] = entry[channel]

    rebuilt = delivery(
        account_id=entry["id"],
        items=[BUILDS[name](item, event_of(item))],
        time_ms=entry["time"],
        standby=channel == "standby",
    )

    assert rebuilt == payload
    assert encode(rebuilt) == encode(payload)


def rebuild_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry of plain text messages, rebuilt with `account_entry` and `message_item`."""
    items = [BUILDS["text"](item, item["message"]) for item in entry["messaging"]]
    return account_entry(account_id=entry["id"], items=items, time_ms=entry["time"])


def test_builders_compose_batches_pushed_signed(sandbox, receiver):
    several_entries = example("two_entries_one_delivery")
    several_items = example("two_messaging_items_one_entry")
    [entry] = several_items["entry"]
    items = [BUILDS["text"](item, item["message"]) for item in entry["messaging"]]

    batches = [
        batch(entries=[rebuild_entry(entry) for entry in several_entries["entry"]]),
        delivery(account_id=entry["id"], items=items, time_ms=entry["time"]),
    ]
    for payload in batches:
        response = sandbox.control("POST", "/webhooks", json={"payload": payload})
        assert response.json()["status_code"] == 200

    assert batches == [several_entries, several_items]
    first, second = receiver.wait_for(2)
    assert signed_json(first) == several_entries
    assert second.body == encode(several_items)


def test_builders_refuse_events_meta_never_sends():
    ids = {"customer_id": "1", "account_id": "2", "timestamp_ms": 3}
    with pytest.raises(ValueError, match="reaction needs"):
        reaction_item(**ids, mid="m")
    for marks in ({}, {"mid": "m", "watermark": 1}):
        with pytest.raises(ValueError, match="mid or a watermark"):
            read_item(**ids, **marks)
