"""Nothing lost: a failing webhook event is recorded and replayed after the fix; a database failure
mid-delivery answers 503 and leaves nothing half-written."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from app.models import Conversation, Message, Reaction, WebhookDelivery
from app.repositories import messages, reactions
from app.sandbox import webhooks
from app.services.replay import replay_failed
from tests.helpers import ACCOUNT_ID, CUSTOMER_ID, ServiceClient, count_rows

REPO_ROOT = Path(__file__).resolve().parents[2]


def message_and_reaction() -> dict[str, Any]:
    ids = {"account_id": ACCOUNT_ID, "customer_id": CUSTOMER_ID}
    return webhooks.delivery(
        account_id=ACCOUNT_ID,
        items=[
            webhooks.message_item(**ids, mid="m-1", timestamp_ms=1745923812000, text="hello"),
            webhooks.reaction_item(
                **ids, mid="m-1", timestamp_ms=1745923813000, action="react", reaction="love"
            ),
        ],
    )


def broken_reactions(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    if rows:
        raise RuntimeError("a bug in the reaction handler")
    return set()


def test_a_failing_webhook_event_is_recorded_the_rest_applied_and_replay_fixes_it(
    api: ServiceClient, db: Session, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reactions, "store_many", broken_reactions)

    response = api.deliver(message_and_reaction())

    assert response.status_code == 200
    assert db.scalars(select(Message)).one().text == "hello"
    assert count_rows(db, Reaction) == 0
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert delivery.status == "failed"
    assert delivery.error == "entry[0].messaging[1]: RuntimeError: a bug in the reaction handler"
    assert delivery.applied_at is None

    monkeypatch.undo()  # the bug is fixed
    engine = create_engine(database_url)
    report = replay_failed(sessionmaker(bind=engine))
    engine.dispose()

    assert (report.replayed, report.fixed, report.still_failing) == (1, 1, [])
    db.expire_all()
    assert db.scalars(select(Reaction)).one().reaction == "love"
    assert count_rows(db, Message) == 1  # the message that had applied is not stored twice
    replayed = db.scalars(select(WebhookDelivery)).one()
    assert (replayed.status, replayed.error, replayed.replay_count) == ("applied", None, 1)
    assert replayed.applied_at is not None


def test_replay_keeps_what_still_fails_and_says_so(
    api: ServiceClient, db: Session, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reactions, "store_many", broken_reactions)
    assert api.deliver(message_and_reaction()).status_code == 200
    engine = create_engine(database_url)

    report = replay_failed(sessionmaker(bind=engine))
    engine.dispose()

    assert (report.replayed, report.fixed) == (1, 0)
    assert len(report.still_failing) == 1
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert (delivery.status, delivery.replay_count) == ("failed", 1)


@pytest.mark.slow
def test_fab_replay_runs_the_replay_command(
    api: ServiceClient,
    db: Session,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reactions, "store_many", broken_reactions)
    assert api.deliver(message_and_reaction()).status_code == 200
    monkeypatch.undo()
    environment = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO_ROOT)}

    finished = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert "replayed 1 failed deliveries: 1 now applied, 0 still failing" in finished.stdout
    db.expire_all()
    assert db.scalars(select(WebhookDelivery)).one().status == "applied"


def test_a_database_failure_mid_delivery_is_a_503_and_nothing_is_half_written(
    api: ServiceClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_messages = messages.store_messages
    applied: list[str] = []

    def messages_then_outage(session: Session, rows: list[dict[str, Any]]) -> set[str]:
        applied.extend(store_messages(session, rows))  # written, then the database goes away
        raise sa_exc.OperationalError("INSERT ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(messages, "store_messages", messages_then_outage)
    ids = {"account_id": ACCOUNT_ID, "customer_id": CUSTOMER_ID}
    payload = webhooks.delivery(
        account_id=ACCOUNT_ID,
        items=[
            webhooks.message_item(**ids, mid="m-1", timestamp_ms=1745923812000, text="one"),
            webhooks.message_item(**ids, mid="m-2", timestamp_ms=1745923813000, text="two"),
        ],
    )

    response = api.deliver(payload)

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert sorted(applied) == ["m-1", "m-2"]  # both were written, then rolled back
    for model in (Message, Conversation, WebhookDelivery):
        assert count_rows(db, model) == 0
