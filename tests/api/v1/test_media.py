"""Attachments with stable media ids, and GET /api/v1/media/{id} with MEDIA_ARCHIVE=off (the
default): 302 to the live CDN URL, refreshed through the Conversations API when it expired."""

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Media, Message
from app.sandbox import webhooks
from tests.api.v1.conftest import START_MS
from tests.conftest import StartShared
from tests.helpers import (
    ACCOUNT_ID,
    ServiceClient,
    StatementCounter,
    customer_writes,
    graph_calls,
    new_customer,
)

# The sandbox's CDN is on 127.0.0.1 (over http): allowed like Meta's CDN hosts.
SANDBOX_CDN = {"media_allowed_hosts": "127.0.0.1"}


@pytest.fixture
def api(start_shared: StartShared) -> ServiceClient:
    service = start_shared(workers=False, **SANDBOX_CDN)
    return ServiceClient(service.url)


def asset_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["asset_id"][0]


def write_attachments(meta: ServiceClient, *types: str, **fields: Any) -> dict[str, Any]:
    customer = new_customer(meta)
    result = customer_writes(
        meta, customer["id"], text=None, attachments=[{"type": t} for t in types], **fields
    )
    return {"customer": customer, "mid": result["mid"], "payload": result["payload"]}


def attachments_shown(api: ServiceClient, customer_id: str) -> list[dict[str, Any]]:
    [message] = api.get(f"/api/v1/conversations/{customer_id}/messages").json()["data"]
    attachments: list[dict[str, Any]] = message["attachments"]
    return attachments


def test_every_attachment_has_a_media_id_beside_its_verbatim_type_and_payload(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    written = write_attachments(meta, "image", "video")
    sent = written["payload"]["entry"][0]["messaging"][0]["message"]["attachments"]

    shown = attachments_shown(api, written["customer"]["id"])

    rows = db.scalars(select(Media).order_by(Media.position)).all()
    assert [(row.position, row.type, row.state) for row in rows] == [
        (0, "image", "remote"),
        (1, "video", "remote"),
    ]
    assert shown == [
        {
            "type": attachment["type"],
            "payload": attachment["payload"],
            "id": str(row.id),
            "url": f"/api/v1/media/{row.id}",
            "source_url": attachment["payload"]["url"],
            "state": "remote",
        }
        for attachment, row in zip(sent, rows, strict=True)
    ]
    assert api.get(f"/api/v1/messages/{written['mid']}").json()["attachments"] == shown


def test_the_same_attachments_delivered_again_keep_their_media_ids(
    api: ServiceClient, db: Session
) -> None:
    ids = {"account_id": ACCOUNT_ID, "customer_id": "1500000000000077", "mid": "m-1"}
    image = {
        "type": "image",
        "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?a=1"},
    }
    item = webhooks.message_item(**ids, timestamp_ms=START_MS, attachments=[image, image])
    for _ in range(2):
        delivered = webhooks.delivery(account_id=ACCOUNT_ID, items=[item], time_ms=START_MS)
        assert api.deliver(delivered).status_code == 200
    item["timestamp"] += 1  # another delivery of the same message (not byte-identical)
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200

    rows = db.scalars(select(Media)).all()
    assert sorted(row.position for row in rows) == [0, 1]
    shown = api.get("/api/v1/messages/m-1").json()["attachments"]
    assert [a["id"] for a in shown] == [
        str(row.id) for row in sorted(rows, key=lambda r: r.position)
    ]


def test_media_redirects_to_the_live_cdn_url(api: ServiceClient, meta: ServiceClient) -> None:
    written = write_attachments(meta, "image")
    [attachment] = attachments_shown(api, written["customer"]["id"])

    response = api.get(attachment["url"], allow_redirects=False)

    assert response.status_code == 302
    assert response.headers["location"] == attachment["payload"]["url"]
    assert api.get(attachment["url"]).content.startswith(b"\x89PNG")
    assert graph_calls(meta, "message") == []


def test_an_expired_url_is_refreshed_through_the_conversations_api(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    written = write_attachments(meta, "image")
    [attachment] = attachments_shown(api, written["customer"]["id"])
    old_url = attachment["payload"]["url"]
    meta.put(f"/_sandbox/media/{asset_of(old_url)}", json={"mode": "expired"}).raise_for_status()

    response = api.get(attachment["url"], allow_redirects=False)

    assert response.status_code == 302
    fresh = response.headers["location"]
    assert fresh != old_url
    assert asset_of(fresh) == asset_of(old_url)
    assert requests.get(fresh, timeout=5).content.startswith(b"\x89PNG")
    assert len(graph_calls(meta, "message")) == 1
    stored = db.scalars(select(Media)).one()
    assert (stored.source_url, stored.state) == (fresh, "remote")
    [shown] = attachments_shown(api, written["customer"]["id"])
    assert shown["payload"]["url"] == old_url  # Meta's payload stays as received
    assert shown["source_url"] == fresh


def test_an_expired_url_older_than_the_20_newest_is_gone(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    written = write_attachments(meta, "image", timestamp_ms=START_MS)
    customer_id = written["customer"]["id"]
    for number in range(20):
        customer_writes(meta, customer_id, f"later {number}", timestamp_ms=START_MS + number + 1)
    media = db.scalars(select(Media)).one()
    meta.put(
        f"/_sandbox/media/{asset_of(media.source_url or '')}", json={"mode": "expired"}
    ).raise_for_status()

    response = api.get(f"/api/v1/media/{media.id}", allow_redirects=False)

    assert response.status_code == 410
    assert response.json()["code"] == "media_expired"
    assert graph_calls(meta, "message") == []  # Meta would not give it: not even asked
    db.expire_all()
    assert db.get(Media, media.id).state == "expired"  # type: ignore[union-attr]


def test_a_url_meta_no_longer_gives_is_gone(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    ids = {"account_id": ACCOUNT_ID, "customer_id": "1500000000000078", "mid": "unknown-to-meta"}
    dead = f"{meta.base_url}/ig_messaging_cdn/?asset_id=1&signature=x"
    image = {"type": "image", "payload": {"url": dead}}
    item = webhooks.message_item(**ids, timestamp_ms=START_MS, attachments=[image])
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200
    media = db.scalars(select(Media)).one()

    response = api.get(f"/api/v1/media/{media.id}", allow_redirects=False)

    assert (response.status_code, response.json()["code"]) == (410, "media_expired")
    # Asked, and Meta knows no such message (to the sandbox, an unknown id is no profile either).
    [asked] = graph_calls(meta)
    assert (asked["path"].rsplit("/", 1)[-1], asked["status_code"]) == ("unknown-to-meta", 400)


def test_an_unsent_messages_media_is_gone_and_its_attachments_cleared(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    written = write_attachments(meta, "image")
    [attachment] = attachments_shown(api, written["customer"]["id"])
    unsent = meta.post(
        f"/_sandbox/customers/{written['customer']['id']}/unsend", json={"mid": written["mid"]}
    )
    assert unsent.status_code == 201

    response = api.get(attachment["url"], allow_redirects=False)

    assert (response.status_code, response.json()["code"]) == (410, "media_deleted")
    assert attachments_shown(api, written["customer"]["id"]) is None
    assert db.scalars(select(Media)).one().deleted_at is not None


@pytest.mark.parametrize(
    "media_id", ["999999", "abc", "-1", "99999999999999999999", "\u0661\u0662", "0x1"]
)
def test_unknown_media_is_404(api: ServiceClient, media_id: str) -> None:
    response = api.get(f"/api/v1/media/{media_id}")

    assert response.status_code == 404
    assert response.json()["code"] == "media_not_found"


def test_an_attachment_without_url_has_an_id_but_nothing_to_serve(
    api: ServiceClient, db: Session
) -> None:
    ids = {"account_id": ACCOUNT_ID, "customer_id": "1500000000000079", "mid": "heart"}
    item = webhooks.echo_item(**ids, timestamp_ms=START_MS, attachments=[{"type": "like_heart"}])
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200

    [shown] = api.get("/api/v1/messages/heart").json()["attachments"]
    response = api.get(shown["url"])

    assert (shown["type"], shown["source_url"], shown["state"]) == ("like_heart", None, "remote")
    assert (response.status_code, response.json()["code"]) == (404, "media_unavailable")
    assert db.scalars(select(Message.attachments)).one() == [{"type": "like_heart"}]


def test_a_message_sent_through_the_api_has_media_for_its_attachment(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    customer = new_customer(meta)
    customer_writes(meta, customer["id"], "hi")
    image = "https://example.com/catalogue.png"

    sent = api.post(
        f"/api/v1/conversations/{customer['id']}/messages",
        json={"attachment": {"type": "image", "url": image}},
    )

    assert sent.status_code == 201, sent.text
    [attachment] = sent.json()["attachments"]
    assert (attachment["source_url"], attachment["state"]) == (image, "remote")
    assert db.get(Media, int(attachment["id"])) is not None


def test_the_received_event_shows_the_attachments_with_their_media(
    api: ServiceClient, meta: ServiceClient
) -> None:
    written = write_attachments(meta, "image")
    [shown] = attachments_shown(api, written["customer"]["id"])

    events = api.get("/api/v1/events", params={"types": "message.received"}).json()["data"]

    [event] = [e for e in events if e["data"]["message"]["mid"] == written["mid"]]
    assert event["data"]["message"]["attachments"] == [shown]


def test_attachments_cost_intake_three_statements_and_text_none(
    start_shared: StartShared, api: ServiceClient
) -> None:
    service = start_shared(workers=False, **SANDBOX_CDN)
    image = {"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?a"}}

    def deliver(number: int, **content: Any) -> list[str]:
        ids = {"account_id": ACCOUNT_ID, "customer_id": "1500000000000080", "mid": f"c-{number}"}
        item = webhooks.message_item(**ids, timestamp_ms=START_MS + number, **content)
        with StatementCounter(service.app.state.engine) as counted:
            assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).ok
        return counted.statements

    deliver(0, text="the conversation exists from now on")
    text = deliver(1, text="words")
    with_images = deliver(2, attachments=[image, image])

    # The new messages' ids, their media rows in one INSERT, and the media of the event's
    # snapshot (message.received shows them).
    assert len(with_images) == len(text) + 3
    assert not [s for s in text if "media" in s]
    assert len([s for s in with_images if s.startswith("INSERT INTO media")]) == 1
