"""Sending when Meta hangs or the database fails after Meta accepted a message."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.main import _warn_about_configuration
from app.models import Message, utcnow
from app.repositories import messages
from app.sandbox.server import BackgroundServer
from app.services.sending import DeliveredSend, UnrecordedSends, UnrecordedSendsWorker
from tests.conftest import StartService
from tests.helpers import (
    ServiceClient,
    add_fault,
    customer_writes,
    example,
    example_bytes,
    new_customer,
    wait_until,
)


@pytest.fixture
def anna(meta: ServiceClient, service: BackgroundServer) -> dict[str, Any]:
    customer = new_customer(meta, username="anna")
    customer_writes(meta, customer["id"], "hi")
    return customer


def failures(db: Session) -> list[tuple[str | None, str | None]]:
    """The stored outbound messages: (status, error code), in order."""
    db.expire_all()
    rows = db.scalars(select(Message).where(Message.direction == "outbound").order_by(Message.id))
    found = [(row.status, (row.error or {}).get("code")) for row in rows]
    db.commit()
    return found


def test_a_hanging_meta_never_takes_the_threads_webhooks_and_reads_need(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    server = start_service(
        worker_threads=8,
        instagram_max_concurrency=3,
        instagram_queue_timeout=0.2,
        instagram_read_timeout=1.5,
        profile_worker_enabled=False,
    )
    add_fault(meta, kind="send", delay_seconds=3, times=20)

    def send(number: int) -> int:
        with ServiceClient(server.url) as client:
            return client.post(
                f"/api/v1/conversations/{anna['id']}/messages", json={"text": f"hi {number}"}
            ).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        sends = [pool.submit(send, number) for number in range(12)]
        time.sleep(0.5)  # the first three hang at Meta, the rest are turned away
        with ServiceClient(server.url) as client:
            started = time.monotonic()
            delivered = client.deliver(example_bytes("text"))
            history = client.get(f"/api/v1/conversations/{anna['id']}/messages")
            elapsed = time.monotonic() - started
        statuses = sorted(future.result() for future in sends)

    assert (delivered.status_code, history.status_code) == (200, 200)
    assert elapsed < 1.0
    assert statuses.count(504) == 3  # the calls that got a slot time out
    assert statuses.count(503) == 9  # the others: instagram_busy, at once
    # Only the three with a slot reached Meta; every attempt is stored as failed, saying why.
    graph_sends = [call for call in meta.get("/_sandbox/calls").json() if call["kind"] == "send"]
    assert len(graph_sends) == 3
    assert sorted(failures(db)) == sorted(
        [("failed", "instagram_timeout")] * 3 + [("failed", "instagram_busy")] * 9
    )
    delivered_mid = example("text")["entry"][0]["messaging"][0]["message"]["mid"]
    assert messages.row_by_mid(db, delivered_mid) is not None


def test_busy_answer_says_so_and_when_to_retry(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    server = start_service(instagram_max_concurrency=1, instagram_queue_timeout=0.1)
    add_fault(meta, kind="send", delay_seconds=1)

    def send(text: str) -> Any:
        with ServiceClient(server.url) as client:
            return client.post(f"/api/v1/conversations/{anna['id']}/messages", json={"text": text})

    with ThreadPoolExecutor(max_workers=2) as pool:
        slow = pool.submit(send, "first")
        time.sleep(0.3)
        busy = pool.submit(send, "second").result()

    assert slow.result().status_code == 201
    assert busy.status_code == 503
    assert busy.json()["code"] == "instagram_busy"
    assert busy.headers["Retry-After"] == "1"
    assert failures(db) == [("sent", None), ("failed", "instagram_busy")]


def test_a_delivered_message_is_never_answered_with_an_error(
    api: ServiceClient,
    meta: ServiceClient,
    db: Session,
    anna: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def database_gone(*_: Any, **__: Any) -> None:
        raise sa_exc.OperationalError("UPDATE messages", {}, Exception("connection lost"))

    monkeypatch.setattr(messages, "attach_mid", database_gone)

    response = api.post(f"/api/v1/conversations/{anna['id']}/messages", json={"text": "once"})

    # Meta accepted it: an error would make the client send it a second time.
    assert response.status_code == 201
    [call] = meta.get("/_sandbox/sent").json()
    mid = call["response"]["message_id"]
    assert (response.json()["mid"], response.json()["status"]) == (mid, "sent")

    def stored() -> set[tuple[str | None, str, str]]:
        db.expire_all()
        rows = db.scalars(select(Message).where(Message.direction == "outbound")).all()
        db.commit()
        return {(row.mid, row.status, row.source) for row in rows}

    # While the database cannot record it, the echo webhook stores the message under its mid.
    wait_until(lambda: (mid, "sent", "echo") in stored(), what="the echo")
    assert stored() == {(None, "pending", "api"), (mid, "sent", "echo")}

    # Once it can, the service records the mid itself: one message, the one it sent.
    monkeypatch.undo()
    wait_until(lambda: stored() == {(mid, "sent", "api")}, what="the late record")


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        (
            {"instagram_pool_size": 8, "instagram_max_concurrency": 16},
            "INSTAGRAM_POOL_SIZE (8) is below INSTAGRAM_MAX_CONCURRENCY (16)",
        ),
        (
            {"worker_threads": 16, "instagram_max_concurrency": 16},
            "WORKER_THREADS (16) is not above INSTAGRAM_MAX_CONCURRENCY (16)",
        ),
    ],
)
def test_settings_that_undo_the_protection_are_warned_about(
    overrides: dict[str, int], warning: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.main"):
        _warn_about_configuration(Settings(_env_file=None, **overrides))

    assert warning in caplog.text


def test_the_defaults_keep_threads_for_webhooks_and_a_connection_per_graph_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(_env_file=None)
    with caplog.at_level(logging.WARNING, logger="app.main"):
        _warn_about_configuration(settings)

    assert "INSTAGRAM_MAX_CONCURRENCY" not in caplog.text
    assert settings.instagram_pool_size >= settings.instagram_max_concurrency
    assert settings.worker_threads > settings.instagram_max_concurrency


def test_sends_still_unrecorded_at_shutdown_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    def database_gone() -> Session:
        raise sa_exc.OperationalError("connect", {}, Exception("connection refused"))

    pending = UnrecordedSends()
    pending.add(
        DeliveredSend(row_id=7, account_id="1", customer_id="2", sent_at=utcnow(), mid="mid-7")
    )
    worker = UnrecordedSendsWorker(database_gone, pending, idle_seconds=0.01)
    worker.start()
    with caplog.at_level(logging.WARNING, logger="app.services.sending"):
        worker.stop()

    assert "message 7 was delivered as mid-7 but stays pending" in caplog.text
    assert len(pending) == 0
