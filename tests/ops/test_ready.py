"""`/ready`: database, schema version, token state, last webhook and backlog; 503 only when the
database is unreachable or behind."""

from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from app.models import WebhookDelivery, utcnow
from app.services.health import migration_heads
from tests import stack as shared
from tests.conftest import InProcess, StartService, alembic_config
from tests.helpers import ServiceClient, text_message
from tests.ops.conftest import change_stored_token, update_sandbox_tokens
from tests.stack import SharedService


def ready(client: ServiceClient | TestClient) -> dict:
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    return response.json()


def test_ready_reports_schema_token_last_webhook_and_backlog(
    quiet_service: SharedService, db: Session
) -> None:
    with ServiceClient(quiet_service.url) as client:
        before = ready(client)
        assert client.deliver(text_message(mid="m-1")).status_code == 200
        broken = text_message(mid="m-2")
        del broken["entry"][0]["messaging"][0]["sender"]  # an event that cannot apply
        assert client.deliver(broken).status_code == 200
        after = ready(client)

    assert before["status"] == "ready"
    assert before["checks"] == {"database": "ok", "schema": "at head"}
    assert before["schema_version"] == ", ".join(sorted(migration_heads()))
    token = before["instagram_token"]
    assert (token["state"], token["days_left"], token["expiry_assumed"]) == ("valid", 59, True)
    assert token["detail"].startswith("valid, expires in 59 days")
    assert before["last_webhook_received_at"] is None
    assert before["backlog"] == {"profiles_due": 0, "failed_deliveries": 0}

    newest = db.query(WebhookDelivery).order_by(WebhookDelivery.id.desc()).first()
    assert newest is not None
    assert after["last_webhook_received_at"] == newest.received_at.isoformat()
    # The customer and the business are queued for a profile fetch (the fetcher is off).
    assert after["backlog"] == {"profiles_due": 2, "failed_deliveries": 1}


def test_a_token_close_to_expiry_is_expiring_in_n_days(
    service: SharedService, database_url: str
) -> None:
    change_stored_token_at(database_url, expires_at=utcnow() + timedelta(days=5, hours=1))
    with ServiceClient(service.url) as client:
        token = ready(client)["instagram_token"]

    assert (token["state"], token["days_left"]) == ("expiring", 5)
    assert token["detail"].startswith("expires in 5 days")
    assert "the refresh job renews it" in token["detail"]


def test_an_expired_token_is_reported_and_the_service_stays_ready(
    service: SharedService, database_url: str
) -> None:
    change_stored_token_at(database_url, expires_at=utcnow() - timedelta(minutes=1))
    with ServiceClient(service.url) as client:
        body = ready(client)

    assert body["status"] == "ready"
    assert body["instagram_token"]["state"] == "expired"
    assert "INSTAGRAM_USER_TOKEN" in body["instagram_token"]["detail"]


def test_an_invalid_token_is_reported_and_the_service_stays_ready(
    start_service: StartService, meta: ServiceClient
) -> None:
    server = start_service(token_cache_seconds=0)
    update_sandbox_tokens(meta, revoked=True)
    with ServiceClient(server.url) as client:
        assert client.get("/user", params={"user_id": "1999999999999998"}).status_code == 502
        body = ready(client)
        # Webhooks are still stored: replicas stay in the load balancer.
        assert client.deliver(text_message(mid="m-after")).status_code == 200

    assert body["status"] == "ready"
    token = body["instagram_token"]
    assert token["state"] == "invalid"
    assert "code 190/460" in token["detail"]
    assert "set INSTAGRAM_USER_TOKEN" in token["detail"]
    assert "invalid_since" in token


def test_without_a_token_the_service_is_ready_and_says_so(
    in_process: InProcess, service_environment: dict[str, Any]
) -> None:
    client = in_process(service_environment, instagram_user_token=None, lifespan=True)
    token = ready(client)["instagram_token"]

    assert token["state"] == "not_configured"
    assert "INSTAGRAM_USER_TOKEN is not set" in token["detail"]


def test_an_unreachable_graph_api_does_not_make_the_service_unready(
    in_process: InProcess, service_environment: dict[str, Any]
) -> None:
    # /ready never calls Instagram: a service whose Graph API is unreachable, and that has
    # just failed to reach it, is ready all the same.
    client = in_process(
        service_environment,
        instagram_graph_url=shared.NOWHERE_URL,
        instagram_get_retries=0,
        profile_worker_enabled=False,
        lifespan=True,
    )
    refused = client.get("/user", params={"user_id": "1999999999999998"})
    assert (refused.status_code, refused.json()["code"]) == (503, "instagram_unreachable")

    body = ready(client)

    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "schema": "at head"}
    assert body["instagram_token"]["state"] == "valid"


def test_not_ready_when_the_database_is_down_says_what_is_unknown(
    database_down: TestClient,
) -> None:
    response = database_down.get("/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"].startswith("unreachable")
    assert body["schema_version"] is None
    assert body["instagram_token"] == {
        "state": "unknown",
        "detail": "unknown: the database is unreachable",
    }
    assert (body["last_webhook_received_at"], body["backlog"]) == (None, None)


def test_not_ready_when_the_schema_is_behind(in_process: InProcess, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    command.upgrade(alembic_config(url), "0002")
    response = in_process(
        shared.service_settings(database_url=url, graph_url=shared.NOWHERE_URL)
    ).get("/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["schema_version"] == "0002"
    assert body["checks"]["schema"].startswith("at 0002, expected")
    assert body["instagram_token"]["state"] == "unknown"


def change_stored_token_at(database_url: str, **values: object) -> None:
    engine = create_engine(database_url)
    change_stored_token(sessionmaker(bind=engine), **values)
    engine.dispose()
