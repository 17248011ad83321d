"""A PostgreSQL restart costs only the requests in flight: pooled connections the server
closed are replaced before they serve a request."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, make_url, select, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import create_db_engine
from app.main import create_app
from app.models import User
from app.sandbox.server import BackgroundServer
from tests.conftest import Databases
from tests.helpers import (
    ACCOUNT_ID,
    APP_SECRET,
    USER_TOKEN,
    VERIFY_TOKEN,
    ServiceClient,
    customer_writes,
    new_customer,
    text_message,
    wait_until,
)

pytestmark = pytest.mark.postgres
APPLICATION_NAME = "insta-service-restart-test"


@pytest.fixture
def postgres_service(
    postgres_admin: Engine, sandbox: BackgroundServer, tmp_path: Path
) -> Iterator[BackgroundServer]:
    """The service on a fresh PostgreSQL schema, its connections named for this test."""
    databases = Databases("postgresql", directory=tmp_path, postgres_admin=postgres_admin)
    url = make_url(databases.new())
    options = url.query["options"]
    url = url.set(query={"options": options, "application_name": APPLICATION_NAME})
    settings = Settings(
        _env_file=None,
        database_url=url.render_as_string(hide_password=False),
        instagram_app_secret=APP_SECRET,
        instagram_user_token=USER_TOKEN,
        instagram_webhook_token=VERIFY_TOKEN,
        instagram_account_id=ACCOUNT_ID,
        instagram_graph_url=sandbox.url,
        allow_open_api=True,
        profile_worker_enabled=False,
        token_refresh_enabled=False,
    )
    with BackgroundServer(create_app(settings)) as server:
        requests.put(
            f"{sandbox.url}/_sandbox/config",
            json={"webhook_url": f"{server.url}/webhook"},
            timeout=5,
        ).raise_for_status()
        yield server
    databases.drop_all()


def end_every_connection(postgres_admin: Engine) -> int:
    """What a restart does to the service's sessions: the server ends them (57P01). Waits
    until those sessions are gone (the service's background threads may open new ones at
    once: those are not waited for)."""
    with postgres_admin.connect() as connection:
        # In the select list, not the WHERE: PostgreSQL may evaluate a WHERE's conditions in
        # any order, and would end every session, this one too.
        ended = [
            pid
            for pid, terminated in connection.execute(
                text(
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": APPLICATION_NAME},
            )
            if terminated
        ]

    def gone() -> bool:
        with postgres_admin.connect() as connection:
            return not connection.execute(
                text("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": ended},
            ).first()

    wait_until(gone, what="the server to end the service's sessions")
    return len(ended)


def test_reads_webhooks_and_sends_succeed_right_after_the_server_ends_every_connection(
    postgres_service: BackgroundServer, postgres_admin: Engine, sandbox: BackgroundServer
) -> None:
    with ServiceClient(sandbox.url) as meta, ServiceClient(postgres_service.url) as api:
        customer = new_customer(meta)
        customer_writes(meta, customer["id"], "hi")
        history = f"/api/v1/conversations/{customer['id']}/messages"
        for round_number in range(5):
            # Fill the pool with several connections, then have the server end them all.
            with ThreadPoolExecutor(8) as pool:
                warm = list(
                    pool.map(
                        lambda _: requests.get(postgres_service.url + history, timeout=10),
                        range(16),
                    )
                )
            assert {response.status_code for response in warm} == {200}
            assert end_every_connection(postgres_admin) >= 1

            read = api.get(history)
            webhook = api.deliver(text_message(mid=f"m.after-restart.{round_number}"))
            sent = api.post(history, json={"text": f"still here {round_number}"})

            assert read.status_code == 200, read.text
            assert webhook.status_code == 200, webhook.text
            assert api.get(f"/api/v1/messages/m.after-restart.{round_number}").status_code == 200
            assert sent.status_code == 201, sent.text
            assert sent.json()["status"] == "sent"
        stored = api.get(history, params={"limit": 50}).json()["data"]
        texts = {message["text"] for message in stored}
        assert {f"still here {n}" for n in range(5)} <= texts


def test_the_services_connections_speak_utc_whatever_the_servers_time_zone(
    postgres_admin: Engine, tmp_path: Path
) -> None:
    """UTCDateTime leaves PostgreSQL's datetimes as psycopg2 returns them, because every
    connection of the service's engine is set to UTC: a server in another zone changes
    nothing (its offset would otherwise reach the API's "…Z" times)."""
    databases = Databases("postgresql", directory=tmp_path, postgres_admin=postgres_admin)
    url = make_url(databases.new())
    tokyo = f"{url.query['options']} -ctimezone=Asia/Tokyo"
    settings = Settings(
        _env_file=None,
        database_url=url.set(query={"options": tokyo}).render_as_string(hide_password=False),
    )
    engine = create_db_engine(settings)
    try:
        with Session(engine) as session:
            session.add(User(id="1001", username="u"))
            session.commit()
            [fetched_at] = session.execute(select(User.created_at)).scalars()
            assert fetched_at.tzinfo is UTC
            assert session.execute(text("SHOW TIME ZONE")).scalar_one() == "UTC"
    finally:
        engine.dispose()
        databases.drop_all()
