"""Sending when Meta hangs or the database fails after Meta accepted a message."""

import logging
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
from app.services.sending import DeliveredSend, UnrecordedSends, UnrecordedSendsWorker
from tests.conftest import StartService
from tests.helpers import (
    ServiceClient,
    add_fault,
    example,
    example_bytes,
    graph_calls,
    outbound_messages,
    sandbox_sends,
    wait_until,
)


def failures(db: Session) -> list[tuple[str | None, str | None]]:
    """The stored outbound messages: (status, error code), in order."""
    return [(row.status, (row.error or {}).get("code")) for row in outbound_messages(db)]


def unanswered_sends(meta: ServiceClient) -> int:
    """Send API calls Meta (the sandbox) has received and not answered yet."""
    return sum(call["status_code"] is None for call in graph_calls(meta, "send"))


@pytest.mark.slow
def test_a_hanging_meta_never_takes_the_threads_webhooks_and_reads_need(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    server = start_service(
        worker_threads=8,
        instagram_max_concurrency=3,
        instagram_queue_timeout=0.2,
        instagram_read_timeout=3,
        profile_worker_enabled=False,
    )
    # Meta holds every send far longer than the service waits (the sandbox's reset ends it).
    add_fault(meta, kind="send", delay_seconds=60, times=20)

    def send(number: int) -> int:
        with ServiceClient(server.url) as client:
            return client.post(
                f"/api/v1/conversations/{anna['id']}/messages", json={"text": f"hi {number}"}
            ).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        sends = [pool.submit(send, number) for number in range(12)]
        # Three sends hold the three Graph slots, hanging at Meta; the nine others are
        # turned away without waiting for them.
        wait_until(
            lambda: unanswered_sends(meta) == 3 and sum(f.done() for f in sends) == 9,
            what="three sends hanging at Meta and nine answered",
        )
        with ServiceClient(server.url) as client:
            delivered = client.deliver(example_bytes("text"))
            history = client.get(f"/api/v1/conversations/{anna['id']}/messages")
        # Both were served while the three still hung in the service, holding their slots.
        still_hanging = [future for future in sends if not future.done()]
        statuses = sorted(future.result() for future in sends)

    assert (delivered.status_code, history.status_code) == (200, 200)
    assert len(still_hanging) == 3
    assert statuses.count(504) == 3  # the calls that got a slot time out
    assert statuses.count(503) == 9  # the others: instagram_busy, at once
    # Only the three with a slot reached Meta; every attempt is stored as failed, saying why.
    assert len(graph_calls(meta, "send")) == 3
    assert sorted(failures(db)) == sorted(
        [("failed", "instagram_timeout")] * 3 + [("failed", "instagram_busy")] * 9
    )
    delivered_mid = example("text")["entry"][0]["messaging"][0]["message"]["mid"]
    assert messages.row_by_mid(db, delivered_mid) is not None
    assert [m["text"] for m in history.json()["data"]][-1] == "Hi! Do you ship to Berlin?"


def test_busy_answer_says_so_and_when_to_retry(
    start_service: StartService, meta: ServiceClient, db: Session, anna: dict
) -> None:
    server = start_service(instagram_max_concurrency=1, instagram_queue_timeout=0.1)
    add_fault(meta, kind="send", delay_seconds=60)  # held until the faults are cleared

    def send(text: str) -> Any:
        with ServiceClient(server.url) as client:
            return client.post(f"/api/v1/conversations/{anna['id']}/messages", json={"text": text})

    with ThreadPoolExecutor(max_workers=2) as pool:
        slow = pool.submit(send, "first")
        wait_until(lambda: unanswered_sends(meta) == 1, what="the first send held at Meta")
        busy = pool.submit(send, "second").result()
        assert meta.delete("/_sandbox/faults").status_code == 200  # Meta answers the first
        first = slow.result()

    assert first.status_code == 201
    assert busy.status_code == 503
    assert busy.json()["code"] == "instagram_busy"
    assert busy.headers["Retry-After"] == "1"
    assert failures(db) == [("sent", None), ("failed", "instagram_busy")]
    assert [call["body"]["message"] for call in sandbox_sends(meta)] == [{"text": "first"}]


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
    [call] = sandbox_sends(meta)
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
