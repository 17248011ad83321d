"""Attempts refused before any POST: a signing secret that cannot be opened, and (unless
EVENTS_ALLOW_PRIVATE_URLS) an endpoint URL that resolves to a non-public address at delivery
time. Each is recorded as a failed attempt and retried on the schedule; the receiver, a real
local HTTP server, gets nothing."""

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from app.config import Settings
from app.models import EventDelivery, EventDeliveryAttempt
from app.services.events.delivery import Deliverer
from app.services.events.horizon import Horizon
from app.services.events.sealed_secrets import UNREADABLE
from tests.events.receiver import Receiver
from tests.helpers import ServiceClient, wait_until
from tests.stack import SharedService


@pytest.fixture
def api(quiet_service: SharedService) -> Iterator[ServiceClient]:
    # Background delivery paused: the test's own Deliverer makes the attempts.
    with ServiceClient(quiet_service.url) as client:
        yield client


def ping_queued(api: ServiceClient, receiver: Receiver) -> dict[str, Any]:
    """An endpoint at the receiver (created while private URLs are allowed), with a ping
    waiting for it."""
    endpoint: dict[str, Any] = api.post(
        "/api/v1/webhook-endpoints", json={"url": receiver.url}
    ).json()
    assert api.post(f"/api/v1/webhook-endpoints/{endpoint['id']}/test").status_code == 202
    return endpoint


def one_round(database_url: str, settings: Settings) -> None:
    engine = create_engine(database_url)
    deliverer = Deliverer(
        session_factory=sessionmaker(bind=engine), settings=settings, horizon=Horizon()
    )
    try:
        # On PostgreSQL the safe horizon may trail an event writer in flight for a moment.
        wait_until(lambda: deliverer.run_once() == 1, what="the attempt")
    finally:
        deliverer.http.close()
        engine.dispose()


def recorded(db: Session, endpoint_id: str) -> tuple[EventDelivery, list[EventDeliveryAttempt]]:
    db.expire_all()
    delivery = db.scalars(select(EventDelivery).where(EventDelivery.endpoint_id == endpoint_id))
    attempts = db.scalars(
        select(EventDeliveryAttempt).where(EventDeliveryAttempt.endpoint_id == endpoint_id)
    )
    return delivery.one(), list(attempts)


def test_a_secret_sealed_with_another_key_is_a_failed_attempt_and_no_post(
    api: ServiceClient, quiet_service: SharedService, database_url: str, db: Session
) -> None:
    receiver = Receiver()
    try:
        endpoint = ping_queued(api, receiver)
        # The key the secret was sealed with (derived from the app secret) is gone.
        changed = quiet_service.settings.model_copy(
            update={"instagram_app_secret": SecretStr("another-app-secret-0123456789abcdef")}
        )

        one_round(database_url, changed)

        assert receiver.all() == []
    finally:
        receiver.close()
    delivery, [attempt] = recorded(db, endpoint["id"])
    assert (attempt.number, attempt.status_code, attempt.error) == (1, None, UNREADABLE)
    assert delivery.status == "pending"  # retried on the schedule
    assert delivery.next_attempt_at > attempt.attempted_at
    shown = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()["data"]
    assert [a["error"] for a in shown] == [UNREADABLE]


def without_private_urls(service: SharedService) -> Settings:
    """The service's settings, EVENTS_ALLOW_PRIVATE_URLS turned off since the endpoint was
    created."""
    return service.settings.model_copy(update={"events_allow_private_urls": False})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_endpoint_resolving_to_a_private_address_at_delivery_gets_no_post(
    api: ServiceClient, quiet_service: SharedService, database_url: str, db: Session, host: str
) -> None:
    receiver = Receiver()
    try:
        endpoint = ping_queued(api, receiver)
        url = receiver.url.replace("127.0.0.1", host)
        changed = api.patch(f"/api/v1/webhook-endpoints/{endpoint['id']}", json={"url": url})
        assert changed.status_code == 200

        one_round(database_url, without_private_urls(quiet_service))

        assert receiver.all() == []
    finally:
        receiver.close()
    delivery, [attempt] = recorded(db, endpoint["id"])
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith("the URL's host resolves to a non-public address (")
    assert attempt.error.endswith("): not connected")
    assert delivery.status == "pending"  # retried on the schedule, like any failure
    assert delivery.next_attempt_at > attempt.attempted_at
    [shown] = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()["data"]
    assert (shown["error"], shown["delivery_status"]) == (attempt.error, "pending")


def test_the_connection_goes_to_the_address_that_was_checked(
    api: ServiceClient,
    quiet_service: SharedService,
    database_url: str,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A name no resolver knows, answered (once, by the check) with the receiver's address as
    # if it were public: the POST reaches it, so the connection used the checked address and
    # did not ask DNS again.
    checked: list[str] = []

    def resolved_once(host: str, port: int) -> list[str]:
        checked.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr("app.services.events.transport.public_addresses", resolved_once)
    receiver = Receiver()
    try:
        endpoint = ping_queued(api, receiver)
        url = receiver.url.replace("127.0.0.1", "hooks.invalid")
        api.patch(f"/api/v1/webhook-endpoints/{endpoint['id']}", json={"url": url})

        one_round(database_url, without_private_urls(quiet_service))

        [got] = receiver.all()
    finally:
        receiver.close()
    assert checked == ["hooks.invalid"]
    assert got.headers["host"] == f"hooks.invalid:{url.split(':')[2].split('/')[0]}"
    assert Webhook(endpoint["secret"]).verify(got.body, got.headers)["type"] == "ping"
    delivery, [attempt] = recorded(db, endpoint["id"])
    assert (delivery.status, attempt.status_code, attempt.error) == ("succeeded", 200, None)
