"""The token lifecycle seen from a running service: 190 answers 502 and marks the token, the
first success clears it, a refresh elsewhere is used without a restart."""

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Message
from tests.conftest import StartService
from tests.helpers import Clock, ServiceClient, customer_writes, graph_calls, new_customer
from tests.ops.conftest import DAY, Process, stored_token, update_sandbox_tokens


def send(client: ServiceClient, customer_id: str, text: str = "hi") -> dict:
    response = client.post(
        "/message/send", params={"user_id": customer_id}, json={"message": {"text": text}}
    )
    return {"status": response.status_code, **response.json()}


def token_state(client: ServiceClient) -> str:
    return client.get("/ready").json()["instagram_token"]["state"]


def test_a_revoked_token_fails_sends_with_502_until_instagram_accepts_it_again(
    start_service: StartService,
    meta: ServiceClient,
    db: Session,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_service(token_cache_seconds=0)
    customer = new_customer(meta, username="anna")
    customer_writes(meta, customer["id"], "hello")
    update_sandbox_tokens(meta, revoked=True)

    with ServiceClient(server.url) as client:
        refused = send(client, customer["id"])
        assert refused["status"] == 502
        assert refused["code"] == "instagram_token_invalid"
        assert "INSTAGRAM_USER_TOKEN" in refused["detail"]
        assert token_state(client) == "invalid"
        assert stored_token(session_factory).invalid_since is not None
        assert "re-authentication needed" in caplog.text

        sends_before = len(graph_calls(meta, "send"))
        assert send(client, customer["id"])["status"] == 502  # still called: the mark reports
        assert len(graph_calls(meta, "send")) == sends_before + 1

        update_sandbox_tokens(meta, revoked=False)
        sent = send(client, customer["id"], "back")
        assert sent["status"] == 200
        assert token_state(client) == "valid"

    assert stored_token(session_factory).invalid_since is None
    statuses = [m.status for m in db.query(Message).filter_by(direction="outbound").all()]
    assert statuses.count("failed") == 2


def test_a_newly_configured_token_clears_the_mark(
    start_service: StartService, meta: ServiceClient
) -> None:
    stale = start_service(instagram_user_token="IGAAstale-token", token_cache_seconds=0)
    with ServiceClient(stale.url) as client:
        assert client.get("/user", params={"user_id": "1999999999999998"}).status_code == 502
        assert token_state(client) == "invalid"
    stale.stop()

    fresh = start_service()  # the token the sandbox issued, configured after a restart
    with ServiceClient(fresh.url) as client:
        assert token_state(client) == "valid"


def test_a_token_refreshed_by_another_process_is_used_without_a_restart(
    start_service: StartService,
    meta: ServiceClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: Clock,
) -> None:
    server = start_service(token_cache_seconds=0, token_refresh_enabled=False)
    customer = new_customer(meta, username="anna")
    customer_writes(meta, customer["id"], "hello")
    update_sandbox_tokens(meta, age_seconds=2 * DAY)
    other = Process(settings, session_factory, clock)
    clock.advance(days=1, seconds=1)
    assert other.refresher.run_once() is True
    other.close()
    update_sandbox_tokens(meta, token=meta.get("/_sandbox/tokens").json()[0]["value"], revoked=True)

    with ServiceClient(server.url) as client:
        assert send(client, customer["id"])["status"] == 200
        assert token_state(client) == "valid"
