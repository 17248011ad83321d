"""Delivery to webhook endpoints over real HTTP (a local receiver): Standard Webhooks
signatures checked with the `standardwebhooks` library, retries, 410, per-conversation order,
replay, filters, and what the API says about it all."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from app.models import EventDelivery, EventDeliveryAttempt, WebhookEndpoint
from app.sandbox import webhooks
from app.services.tokens.cipher import cipher_for
from tests.conftest import InProcess, StartShared
from tests.events.receiver import Answer, Receiver
from tests.helpers import ACCOUNT_ID, CUSTOMER_ID, ServiceClient, wait_until
from tests.stack import NOWHERE_URL, SharedService, service_settings

MS = 1745923800000
OTHER_CUSTOMER = "1187429836452191"


def say(api: ServiceClient, mid: str, *, customer: str = CUSTOMER_ID, at: int = MS) -> None:
    item = webhooks.message_item(
        account_id=ACCOUNT_ID, customer_id=customer, mid=mid, timestamp_ms=at, text=mid
    )
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200


# Profile fetches write events of their own (profile.updated): these tests leave them out.
MESSAGING = ["message.received", "message.sent", "message.updated", "message.deleted"]


def subscribe(api: ServiceClient, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    body = {"url": receiver.url, "event_types": MESSAGING, **fields}
    response = api.post("/api/v1/webhook-endpoints", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def mids(received: list[Any]) -> list[str]:
    return [r.json["data"]["message"]["mid"] for r in received if r.json["type"] != "ping"]


def test_a_delivery_is_signed_by_the_standard_and_carries_the_snapshot(
    api: ServiceClient, receiver: Receiver, db: Session, service: SharedService
) -> None:
    endpoint = subscribe(api, receiver, description="CRM")
    assert endpoint["secret"].startswith("whsec_")
    say(api, "m-1")

    wait_until(lambda: len(receiver.all()) == 1, what="the delivery")
    [got] = receiver.all()
    payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    event = api.get("/api/v1/events", params={"types": "message.received"}).json()["data"][0]
    assert got.headers["webhook-id"] == event["id"]
    assert payload["type"] == "message.received"
    assert payload["data"]["message"] == event["data"]["message"]
    assert payload["data"]["conversation"] == CUSTOMER_ID
    assert payload["data"]["seq"] == event["seq"]
    wait_until(lambda: db.scalar(select(EventDelivery.status)) == "succeeded", what="recorded")
    db.expire_all()
    stored = db.scalars(select(WebhookEndpoint)).one()
    # Sealed at rest with the token cipher: the column never holds the secret in clear.
    assert endpoint["secret"] not in stored.secret
    assert not stored.secret.startswith("whsec_")
    assert cipher_for(service.settings).open(stored.secret) == endpoint["secret"]


def test_during_a_rotation_both_secrets_sign(
    api: ServiceClient, receiver: Receiver, db: Session, service: SharedService
) -> None:
    endpoint = subscribe(api, receiver)
    rotated = api.post(f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != endpoint["secret"]
    assert new.startswith("whsec_")
    say(api, "m-1")

    wait_until(lambda: len(receiver.all()) == 1, what="the delivery")
    [got] = receiver.all()
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new):
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "message.received"
    stored = db.scalars(select(WebhookEndpoint)).one()
    assert stored.previous_secret is not None
    for column, clear in ((stored.secret, new), (stored.previous_secret, endpoint["secret"])):
        assert clear not in column
        assert cipher_for(service.settings).open(column) == clear


def attempts_shown(api: ServiceClient, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries"
    response = api.get(path)
    assert response.status_code == 200, response.text
    shown: list[dict[str, Any]] = response.json()["data"]
    return shown


def test_a_failed_attempt_is_retried_with_the_same_id_until_it_succeeds(
    api: ServiceClient, receiver: Receiver, db: Session
) -> None:
    endpoint = subscribe(api, receiver)
    receiver.answer_next(Answer(500), Answer(503, headers={"Retry-After": "0"}))
    say(api, "m-1")

    wait_until(
        lambda: [a["delivery_status"] for a in attempts_shown(api, endpoint)] == ["succeeded"] * 3,
        what="the third attempt",
    )
    attempts = receiver.all()
    assert [r.status for r in attempts] == [500, 503, 200]
    assert len({r.event_id for r in attempts}) == 1
    shown = attempts_shown(api, endpoint)  # every attempt, newest first
    assert [(a["attempt"], a["status_code"], a["error"]) for a in shown] == [
        (3, 200, None),
        (2, 503, "HTTP 503"),
        (1, 500, "HTTP 500"),
    ]
    assert {a["event_id"] for a in shown} == {attempts[0].event_id}
    assert len({a["delivery_id"] for a in shown}) == 1
    assert all(a["next_attempt_at"] is None and a["duration_ms"] >= 0 for a in shown)
    assert shown[0]["attempted_at"] >= shown[1]["attempted_at"] >= shown[2]["attempted_at"]
    stored = db.execute(
        select(EventDeliveryAttempt.number, EventDeliveryAttempt.status_code)
        .join(EventDelivery, EventDelivery.id == EventDeliveryAttempt.delivery_id)
        .where(EventDelivery.endpoint_id == endpoint["id"])
        .order_by(EventDeliveryAttempt.id)
    ).all()
    assert [tuple(row) for row in stored] == [(1, 500), (2, 503), (3, 200)]
    delivery = db.scalars(select(EventDelivery)).one()
    assert (delivery.status, delivery.attempts) == ("succeeded", 3)


def test_an_attempt_waiting_for_its_retry_shows_when_it_comes(
    api: ServiceClient, receiver: Receiver
) -> None:
    endpoint = subscribe(api, receiver)
    receiver.answer_next(Answer(503, headers={"Retry-After": "3600"}))
    say(api, "m-1")

    wait_until(lambda: len(attempts_shown(api, endpoint)) == 1, what="the first attempt")
    [shown] = attempts_shown(api, endpoint)
    assert (shown["attempt"], shown["status_code"], shown["error"]) == (1, 503, "HTTP 503")
    assert shown["delivery_status"] == "pending"
    waited = datetime.fromisoformat(shown["next_attempt_at"]) - datetime.fromisoformat(
        shown["attempted_at"]
    )
    assert timedelta(seconds=3500) < waited <= timedelta(seconds=3601)  # Retry-After wins
    assert len(receiver.all()) == 1


@pytest.mark.slow
def test_a_timeout_is_retried(api: ServiceClient, receiver: Receiver) -> None:
    subscribe(api, receiver)
    receiver.answer_next(Answer(200, delay=1.5))  # EVENTS_TIMEOUT_SECONDS is 1 in tests
    say(api, "m-1")

    wait_until(lambda: len(receiver.all()) == 2, what="the retry")
    first, second = receiver.all()
    assert first.event_id == second.event_id


def test_the_schedule_spent_the_event_is_given_up_and_the_next_goes(
    api: ServiceClient, receiver: Receiver
) -> None:
    endpoint = subscribe(api, receiver)
    receiver.answer_for(lambda body: body["data"]["message"]["mid"] == "m-1", *[Answer(500)] * 4)
    say(api, "m-1")
    say(api, "m-2", at=MS + 1)

    wait_until(
        lambda: (
            [a["delivery_status"] for a in attempts_shown(api, endpoint)]
            == ["succeeded"] + ["failed"] * 4
        ),
        what="m-2 delivered after m-1 is given up",
    )
    assert mids(receiver.all()) == ["m-1"] * 4 + ["m-2"]
    shown = attempts_shown(api, endpoint)
    assert [(a["attempt"], a["status_code"], a["error"]) for a in shown] == [
        (1, 200, None),
        *[(number, 500, "HTTP 500") for number in (4, 3, 2, 1)],
    ]
    m1, m2 = shown[1]["event_id"], shown[0]["event_id"]
    assert m1 != m2
    assert {a["event_id"] for a in shown[1:]} == {m1}


def test_410_disables_the_endpoint_at_once(
    api: ServiceClient, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = subscribe(api, receiver)
    receiver.answer_next(Answer(410))
    say(api, "m-1")

    def disabled() -> bool:
        return api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}").json()["enabled"] is False

    wait_until(disabled, what="the endpoint disabled")
    shown = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}").json()
    assert shown["disabled_reason"] == "HTTP 410 Gone"
    assert any("endpoint.disabled" in record.getMessage() for record in caplog.records)
    say(api, "m-2", at=MS + 1)
    ready = api.get("/ready").json()
    assert [e["id"] for e in ready["disabled_webhook_endpoints"]] == [endpoint["id"]]
    assert len(receiver.all()) == 1


def test_one_conversation_waits_for_its_failing_event_while_others_flow(
    api: ServiceClient, receiver: Receiver
) -> None:
    subscribe(api, receiver)
    a1_fails = [Answer(500)] * 3  # retried after 0.1, 0.2 and 0.3 s in tests
    receiver.answer_for(lambda body: body["data"]["message"]["mid"] == "a-1", *a1_fails)
    say(api, "a-1")
    say(api, "a-2", at=MS + 1)
    say(api, "b-1", customer=OTHER_CUSTOMER, at=MS + 2)

    wait_until(lambda: len(receiver.succeeded()) == 3, what="every event delivered")
    received = receiver.all()
    assert mids(receiver.succeeded()).index("a-1") < mids(receiver.succeeded()).index("a-2")
    a2 = next(r for r in received if mids([r]) == ["a-2"])
    a1_success = next(r for r in received if mids([r]) == ["a-1"] and r.status == 200)
    assert a2.at >= a1_success.at  # never sent before a-1 went through
    b1 = next(r for r in received if mids([r]) == ["b-1"])
    assert b1.at < a1_success.at  # not held back by a-1's retries


def test_replay_delivers_the_endpoints_events_again(api: ServiceClient, receiver: Receiver) -> None:
    endpoint = subscribe(api, receiver)
    for number in range(3):
        say(api, f"m-{number}", at=MS + number)
    wait_until(lambda: len(receiver.succeeded()) == 3, what="the first deliveries")
    listed = api.get("/api/v1/events", params={"types": "message.received"}).json()["data"]
    second = listed[1]["seq"]

    replay = api.post(
        f"/api/v1/webhook-endpoints/{endpoint['id']}/replay", json={"since_seq": second}
    )

    assert replay.status_code == 202
    assert replay.json() == {"deliveries": 2}
    wait_until(lambda: len(receiver.succeeded()) == 5, what="the replay")
    assert mids(receiver.succeeded()) == ["m-0", "m-1", "m-2", "m-1", "m-2"]


def test_filters_by_type_and_account(api: ServiceClient, receiver: Receiver) -> None:
    other = Receiver()
    try:
        subscribe(api, receiver, event_types=["message.deleted"])
        subscribe(api, other, event_types=None, account_ids=["17841400000000001"])
        everything = Receiver()
        try:
            subscribe(api, everything, account_ids=[ACCOUNT_ID])
            say(api, "m-1")
            unsend = webhooks.unsend_item(
                account_id=ACCOUNT_ID, customer_id=CUSTOMER_ID, mid="m-1", timestamp_ms=MS + 1
            )
            api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[unsend]))

            wait_until(lambda: len(everything.succeeded()) == 2, what="both events")
            wait_until(lambda: len(receiver.succeeded()) == 1, what="the unsend")
            assert receiver.succeeded()[0].json["type"] == "message.deleted"
            assert other.all() == []
        finally:
            everything.close()
    finally:
        other.close()


def test_ping_goes_to_that_endpoint_only(api: ServiceClient, receiver: Receiver) -> None:
    endpoint = subscribe(api, receiver)
    other = Receiver()
    try:
        subscribe(api, other)
        ping = api.post(f"/api/v1/webhook-endpoints/{endpoint['id']}/test")
        assert ping.status_code == 202

        wait_until(lambda: len(receiver.all()) == 1, what="the ping")
        [got] = receiver.all()
        assert got.json["type"] == "ping"
        assert got.event_id == ping.json()["event_id"]
        assert other.all() == []
        assert "ping" not in {e["type"] for e in api.get("/api/v1/events").json()["data"]}
    finally:
        other.close()


def test_endpoints_are_listed_changed_and_deleted(api: ServiceClient, receiver: Receiver) -> None:
    endpoint = subscribe(api, receiver, description="one")
    listed = api.get("/api/v1/webhook-endpoints").json()
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]

    changed = api.patch(
        f"/api/v1/webhook-endpoints/{endpoint['id']}",
        json={"event_types": ["message.sent"], "enabled": False},
    )
    assert changed.status_code == 200
    assert changed.json()["event_types"] == ["message.sent"]
    assert changed.json()["enabled"] is False
    bad = api.patch(f"/api/v1/webhook-endpoints/{endpoint['id']}", json={"event_types": ["x"]})
    assert bad.json()["code"] == "invalid_event_type"

    assert api.delete(f"/api/v1/webhook-endpoints/{endpoint['id']}").status_code == 204
    gone = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}")
    assert gone.status_code == 404
    assert gone.json()["code"] == "endpoint_not_found"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://localhost/hook",
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_private_or_plain_http_urls_are_422_invalid_url(in_process: InProcess, url: str) -> None:
    settings = service_settings(database_url="", graph_url=NOWHERE_URL)
    client: TestClient = in_process(settings, events_allow_private_urls=False)

    response = client.post("/api/v1/webhook-endpoints", json={"url": url})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_url"


def test_an_endpoint_failing_for_too_long_is_disabled(
    start_shared: StartShared, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # 0.0001 hours: 0.36 s, reached within the test schedule's retries (0.1, 0.2, 0.3 s).
    service = start_shared(events_disable_after_hours=0.0001)
    with ServiceClient(service.url) as api:
        endpoint = subscribe(api, receiver)
        receiver.answer_next(*[Answer(500)] * 10)
        say(api, "m-1")

        def disabled() -> bool:
            shown = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}").json()
            return shown["enabled"] is False

        wait_until(disabled, what="the endpoint disabled")
        shown = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}").json()

    assert shown["disabled_reason"] == "failing for 0.0001 hours"
    assert any("endpoint.disabled" in record.getMessage() for record in caplog.records)
