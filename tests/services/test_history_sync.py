"""History from the Conversations API, over HTTP against the sandbox: backfill (20 newest with
content, older ones as placeholders), idempotence with webhooks, resume, pacing, and gap
detection from an unknown mid and from the sweep."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clients.instagram import InstagramClient
from app.config import Settings
from app.models import (
    AccountSync,
    Conversation,
    Event,
    Message,
    SyncJob,
    SyncJobConversation,
    utcnow,
)
from app.repositories import sync as sync_rows
from app.services.sync.runner import HistorySync
from tests.conftest import MakeSettings
from tests.helpers import (
    ACCOUNT_ID,
    USER_TOKEN,
    ServiceClient,
    add_fault,
    customer_writes,
    graph_calls,
    new_customer,
)

BASE_MS = 1_767_000_000_000  # 2025-12-29: an older history than any webhook in the test


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings(
        sync_calls_per_second=0,
    )


@pytest.fixture
def history_sync(
    settings: Settings, session_factory: sessionmaker[Session], meta: ServiceClient
) -> Iterator[HistorySync]:
    rate_limit(meta, on=False)
    instagram = InstagramClient(settings)
    yield HistorySync(
        session_factory=session_factory,
        instagram=instagram,
        settings=settings,
        accounts=lambda: [ACCOUNT_ID],
    )
    instagram.close()


def rate_limit(meta: ServiceClient, *, on: bool) -> None:
    response = meta.put("/_sandbox/config", json={"conversations_rate_limit": on})
    assert response.status_code == 200, response.text


def history(
    meta: ServiceClient, customer_id: str, count: int, *, start_ms: int = BASE_MS
) -> list[str]:
    """`count` messages of the customer, a minute apart, that no webhook brought (the
    service was down, say); their mids, oldest first."""
    mids = []
    for number in range(count):
        response = meta.post(
            f"/_sandbox/customers/{customer_id}/messages",
            json={
                "text": f"message {number}",
                "timestamp_ms": start_ms + number * 60_000,
                "deliver": False,
            },
        )
        assert response.status_code == 201, response.text
        mids.append(response.json()["payload"]["entry"][0]["messaging"][0]["message"]["mid"])
    return mids


def stored(db: Session, customer_id: str) -> list[Message]:
    db.expire_all()
    rows = list(
        db.scalars(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.customer_id == customer_id)
            .order_by(Message.sent_at)
        )
    )
    db.commit()
    return rows


def backfill(
    history_sync: HistorySync, session_factory: sessionmaker[Session], **kwargs: Any
) -> SyncJob:
    with session_factory() as session:
        job_id = history_sync.start_backfill(session, account_id=ACCOUNT_ID, days=None).id
    assert history_sync.run_job(job_id, **kwargs)
    return history_sync.job(job_id)


def test_a_backfill_imports_the_20_newest_with_content_and_the_rest_as_placeholders(
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    db: Session,
) -> None:
    customer = new_customer(meta, username="sixty")
    mids = history(meta, customer["id"], 60)

    job = backfill(history_sync, session_factory)

    assert (job.status, job.conversations_total, job.conversations_done) == ("done", 1, 1)
    assert (job.messages_imported, job.placeholders_imported) == (20, 40)
    rows = stored(db, customer["id"])
    assert [row.mid for row in rows] == mids
    full, placeholders = rows[40:], rows[:40]
    assert [row.text for row in full] == [f"message {n}" for n in range(40, 60)]
    assert all(row.source == "backfill" and not row.is_placeholder for row in full)
    assert all(row.is_placeholder and row.text is None for row in placeholders)
    assert all(row.direction == "inbound" for row in rows)
    conversation = db.scalar(select(Conversation).where(Conversation.customer_id == customer["id"]))
    assert conversation is not None
    assert conversation.graph_conversation_id is not None
    assert conversation.last_message_at == full[-1].sent_at
    # Backfilling again stores nothing twice.
    again = backfill(history_sync, session_factory)
    assert (again.messages_imported, again.placeholders_imported) == (0, 0)
    assert len(stored(db, customer["id"])) == 60


def test_the_api_shows_placeholders_as_content_unavailable(
    quiet_service: Any,
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
) -> None:
    customer = new_customer(meta, username="olden")
    history(meta, customer["id"], 22)
    backfill(history_sync, session_factory)

    with ServiceClient(quiet_service.url) as api:
        page = api.get(f"/api/v1/conversations/{customer['id']}/messages", params={"limit": 50})
        seed = api.get("/messages", params={"user_id": customer["id"], "messages_count": 50})
    assert page.status_code == 200, page.text
    available = [message["content_available"] for message in page.json()["data"]]
    assert available == [True] * 20 + [False] * 2
    assert [message["text"] for message in seed.json()][:2] == ["[content unavailable]"] * 2


def test_a_webhook_fills_a_placeholder_and_a_backfill_never_overwrites_a_webhook(
    service: Any,
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    db: Session,
) -> None:
    customer = new_customer(meta, username="filled")
    old = history(meta, customer["id"], 21)  # the oldest will be a placeholder
    delivered = customer_writes(meta, customer["id"], "delivered by webhook")
    delivered_mid = delivered["payload"]["entry"][0]["messaging"][0]["message"]["mid"]
    backfill(history_sync, session_factory)
    rows = {row.mid: row for row in stored(db, customer["id"])}
    assert rows[delivered_mid].source == "webhook"
    assert rows[delivered_mid].text == "delivered by webhook"
    assert rows[old[0]].is_placeholder
    assert rows[old[1]].is_placeholder

    # Meta retries the old message's webhook at last: it fills the placeholder.
    placeholder_mid = old[0]
    replay = meta.post(
        "/_sandbox/webhooks",
        json={"payload": _message_delivery(customer["id"], placeholder_mid, "finally here")},
    )
    assert replay.status_code == 200, replay.text
    filled = {row.mid: row for row in stored(db, customer["id"])}[placeholder_mid]
    assert (filled.text, filled.is_placeholder, filled.source) == ("finally here", False, "webhook")


def _message_delivery(customer_id: str, mid: str, text: str) -> dict[str, Any]:
    return {
        "object": "instagram",
        "entry": [
            {
                "id": ACCOUNT_ID,
                "time": BASE_MS,
                "messaging": [
                    {
                        "sender": {"id": customer_id},
                        "recipient": {"id": ACCOUNT_ID},
                        "timestamp": BASE_MS,
                        "message": {"mid": mid, "text": text},
                    }
                ],
            }
        ],
    }


def test_a_failing_conversation_is_recorded_and_the_run_goes_on(
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    db: Session,
) -> None:
    first, second = new_customer(meta, username="first"), new_customer(meta, username="second")
    history(meta, first["id"], 3)
    history(meta, second["id"], 3, start_ms=BASE_MS + 3_600_000)
    faulted = []

    def fail_the_next_conversation_once_listed(job: SyncJob) -> None:
        # The newest conversation (second's) is read first: its messages call fails.
        if job.listed and not faulted:
            add_fault(
                meta,
                kind="conversations",
                status=500,
                error={"message": "An unexpected error has occurred.", "code": 2},
            )
            faulted.append(job.id)

    job = backfill(history_sync, session_factory, progress=fail_the_next_conversation_once_listed)

    assert (job.status, job.conversations_done, job.conversations_failed) == ("done", 2, 1)
    failed = db.scalars(
        select(SyncJobConversation).where(SyncJobConversation.status == "failed")
    ).all()
    assert len(failed) == 1
    assert failed[0].error
    assert len(stored(db, first["id"])) + len(stored(db, second["id"])) == 3


def test_a_backfill_interrupted_goes_on_where_it_stopped(
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    db: Session,
) -> None:
    customers = [new_customer(meta, username=f"resume{n}") for n in range(3)]
    for number, customer in enumerate(customers):
        history(meta, customer["id"], 2, start_ms=BASE_MS + number * 3_600_000)

    class Crash(Exception):
        pass

    def crash_after_the_first_conversation(job: SyncJob) -> None:
        if job.conversations_done == 1:
            raise Crash

    with session_factory() as session:
        job_id = history_sync.start_backfill(session, account_id=ACCOUNT_ID, days=None).id
    history_sync.run_job(job_id, progress=crash_after_the_first_conversation)
    crashed = history_sync.job(job_id)
    assert (crashed.status, crashed.conversations_done) == ("failed", 1)

    # A process that died leaves the job running with a lease; here the run recorded the
    # failure: queue it again as a restart would find it (lease run out).
    with session_factory() as session:
        job = session.get(SyncJob, job_id)
        assert job is not None
        job.status, job.claimed_until = "running", utcnow() - timedelta(seconds=1)
        session.commit()
    calls_before = len(graph_calls(meta, "conversations"))
    assert history_sync.run_next_job()

    resumed = history_sync.job(job_id)
    assert (resumed.status, resumed.conversations_done, resumed.messages_imported) == ("done", 3, 6)
    # Only the two conversations left were read again (one messages call each).
    assert len(graph_calls(meta, "conversations")) - calls_before == 2
    assert sum(len(stored(db, customer["id"])) for customer in customers) == 6


@pytest.mark.slow
def test_calls_stay_within_two_a_second(
    settings: Settings, session_factory: sessionmaker[Session], meta: ServiceClient
) -> None:
    rate_limit(meta, on=True)
    customers = [new_customer(meta, username=f"paced{n}") for n in range(4)]
    for number, customer in enumerate(customers):
        history(meta, customer["id"], 2, start_ms=BASE_MS + number * 3_600_000)
    paced = settings.model_copy(update={"sync_calls_per_second": 2.0})
    instagram = InstagramClient(paced)
    try:
        sync = HistorySync(
            session_factory=session_factory,
            instagram=instagram,
            settings=paced,
            accounts=lambda: [ACCOUNT_ID],
        )
        with session_factory() as session:
            job_id = sync.start_backfill(session, account_id=ACCOUNT_ID, days=None).id
        assert sync.run_job(job_id)
    finally:
        instagram.close()
    assert sync.job(job_id).messages_imported == 8
    calls = [call for call in graph_calls(meta) if call["kind"] in ("conversations", "message")]
    assert len(calls) == 5  # the list, then each conversation's messages
    assert all(call["status_code"] == 200 for call in calls), calls
    times = sorted(call["at_ms"] for call in calls)
    # No sliding second holds more than two calls.
    assert all(later - earlier >= 1000 for earlier, later in zip(times, times[2:], strict=False))


def test_a_reaction_to_an_unknown_message_schedules_a_check_that_fills_the_gap(
    service: Any,
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    db: Session,
) -> None:
    customer = new_customer(meta, username="gappy")
    customer_writes(meta, customer["id"], "first, delivered")
    missed = history(meta, customer["id"], 1, start_ms=BASE_MS * 2)[0]  # its webhook is lost
    reacted = meta.post(
        f"/_sandbox/customers/{customer['id']}/reactions",
        json={"mid": missed, "reaction": "love"},
    )
    assert reacted.status_code == 201, reacted.text

    db.expire_all()
    conversation = db.scalar(select(Conversation).where(Conversation.customer_id == customer["id"]))
    assert conversation is not None
    assert conversation.check_due_at is not None
    db.commit()
    assert history_sync.run_due_checks(now=utcnow() + timedelta(minutes=5)) == 1

    rows = {row.mid: row for row in stored(db, customer["id"])}
    assert rows[missed].text == "message 0"
    assert rows[missed].source == "backfill"
    state = db.get(AccountSync, ACCOUNT_ID)
    assert state is not None
    assert (state.gaps_found, state.gaps_filled) == (1, 1)
    db.expire_all()
    assert db.get(Conversation, conversation.id).check_due_at is None  # type: ignore[union-attr]


def test_a_reaction_to_a_stored_message_schedules_nothing(
    service: Any, meta: ServiceClient, db: Session
) -> None:
    customer = new_customer(meta, username="known")
    mid = customer_writes(meta, customer["id"], "here")["payload"]["entry"][0]["messaging"][0][
        "message"
    ]["mid"]
    reacted = meta.post(
        f"/_sandbox/customers/{customer['id']}/reactions", json={"mid": mid, "reaction": "love"}
    )
    assert reacted.status_code == 201, reacted.text
    db.expire_all()
    conversation = db.scalar(select(Conversation).where(Conversation.customer_id == customer["id"]))
    assert conversation is not None
    assert conversation.check_due_at is None


def test_the_sweep_finds_what_no_webhook_brought(
    service: Any,
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    db: Session,
) -> None:
    customer = new_customer(meta, username="swept")
    customer_writes(meta, customer["id"], "delivered")
    now_ms = int(utcnow().timestamp() * 1000)
    lost = history(meta, customer["id"], 2, start_ms=now_ms + 1000)

    report = history_sync.sweep(ACCOUNT_ID)

    assert report is not None
    assert (report.gaps_found, report.gaps_filled) == (2, 2)
    assert {row.mid for row in stored(db, customer["id"])} >= set(lost)
    with session_factory() as session:
        state = sync_rows.sync_state(session, ACCOUNT_ID)
        assert state.last_sweep_at is not None
        assert state.gaps_found == 2
    # Nothing new: the next sweep finds nothing and stores nothing.
    again = history_sync.sweep(ACCOUNT_ID)
    assert again is not None
    assert again.gaps_found == 0


def test_the_sync_api_starts_and_shows_a_backfill(
    quiet_service: Any,
    history_sync: HistorySync,
    meta: ServiceClient,
    db: Session,
) -> None:
    customer = new_customer(meta, username="via_api")
    history(meta, customer["id"], 3)
    with ServiceClient(quiet_service.url) as api:
        started = api.post(f"/api/v1/accounts/{ACCOUNT_ID}/sync", json={"days": 3650})
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["status"] == "queued"
        assert job["since"] is not None
        assert started.headers["Location"] == f"/api/v1/accounts/{ACCOUNT_ID}/sync/{job['id']}"

        assert history_sync.run_next_job()

        done = api.get(started.headers["Location"]).json()
        assert (done["status"], done["messages_imported"], done["conversations_done"]) == (
            "done",
            3,
            1,
        )
        listed = api.get(f"/api/v1/accounts/{ACCOUNT_ID}/sync").json()["data"]
        assert [entry["id"] for entry in listed] == [job["id"]]

        unknown_account = api.post("/api/v1/accounts/17841499999999999/sync")
        assert (unknown_account.status_code, unknown_account.json()["code"]) == (
            404,
            "account_not_found",
        )
        unknown_job = api.get(f"/api/v1/accounts/{ACCOUNT_ID}/sync/999999")
        assert (unknown_job.status_code, unknown_job.json()["code"]) == (404, "sync_job_not_found")
        for bad in ({"days": 0}, {"days": "many"}, {"since": "yesterday"}):
            refused = api.post(f"/api/v1/accounts/{ACCOUNT_ID}/sync", json=bad)
            assert (refused.status_code, refused.json()["code"]) == (422, "validation_error")
    assert len(stored(db, customer["id"])) == 3


def test_fab_backfill_runs_with_a_progress_line(
    settings: Settings,
    meta: ServiceClient,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app import cli
    from app.config import get_settings

    rate_limit(meta, on=False)
    customer = new_customer(meta, username="cli")
    history(meta, customer["id"], 25)
    for name, value in {
        "DATABASE_URL": settings.database_url,
        "INSTAGRAM_USER_TOKEN": USER_TOKEN,
        "INSTAGRAM_ACCOUNT_ID": ACCOUNT_ID,
        "INSTAGRAM_GRAPH_URL": settings.instagram_graph_url,
        "SYNC_CALLS_PER_SECOND": "0",
    }.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()
    try:
        assert cli.main(["backfill", "--days", "3650"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert f"of account {ACCOUNT_ID}, last 3650 days" in out
    assert "1/1 conversations · 20 messages · 5 placeholders · 0 failed" in out
    assert out.rstrip().endswith("done")
    assert len(stored(db, customer["id"])) == 25


def test_sweeps_start_when_an_account_is_first_seen_and_go_on_after_a_restart(
    history_sync: HistorySync, session_factory: sessionmaker[Session], meta: ServiceClient
) -> None:
    customer = new_customer(meta, username="restart")
    now = utcnow()
    assert history_sync.sweep_due_accounts(now=now) == 0  # first seen: nothing to compare yet
    assert graph_calls(meta, "conversations") == []
    assert history_sync.sweep_due_accounts(now=now + timedelta(minutes=59)) == 0
    # The service was down; messages came meanwhile without their webhooks.
    history(meta, customer["id"], 2, start_ms=int((now + timedelta(minutes=30)).timestamp() * 1000))
    assert history_sync.sweep_due_accounts(now=now + timedelta(minutes=61)) == 1
    with session_factory() as session:
        state = sync_rows.sync_state(session, ACCOUNT_ID)
        assert (state.gaps_found, state.gaps_filled) == (2, 2)


def test_backfilled_messages_make_message_backfilled_events_never_received(
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    db: Session,
) -> None:
    customer = new_customer(meta, username="evented")
    mids = history(meta, customer["id"], 22)
    backfill(history_sync, session_factory)

    db.expire_all()
    events = db.scalars(select(Event).where(Event.conversation == customer["id"])).all()
    assert {event.type for event in events} == {"message.backfilled"}
    assert sorted(event.payload["message"]["mid"] for event in events) == sorted(mids)
    unavailable = [e for e in events if not e.payload["message"]["content_available"]]
    assert len(unavailable) == 2
    assert all(event.account_id == ACCOUNT_ID for event in events)
    # Backfilling again changes nothing: no event.
    backfill(history_sync, session_factory)
    db.expire_all()
    assert len(db.scalars(select(Event).where(Event.conversation == customer["id"])).all()) == 22


def test_a_backfill_meta_fails_for_now_pauses_and_goes_on(
    history_sync: HistorySync,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    db: Session,
) -> None:
    customer = new_customer(meta, username="paused")
    history(meta, customer["id"], 3)
    # Listing the conversations fails (Meta's transient code 2).
    add_fault(
        meta,
        kind="conversations",
        status=500,
        error={"message": "An unexpected error has occurred.", "code": 2},
    )
    with session_factory() as session:
        job_id = history_sync.start_backfill(session, account_id=ACCOUNT_ID, days=None).id
    assert history_sync.run_job(job_id)
    paused = history_sync.job(job_id)
    assert paused.status == "running"
    assert paused.error
    assert paused.claimed_until is not None
    assert paused.claimed_until > utcnow()
    assert not history_sync.run_next_job()  # not before its retry time

    with session_factory() as session:
        job = session.get(SyncJob, job_id)
        assert job is not None
        job.claimed_until = utcnow() - timedelta(seconds=1)
        session.commit()
    assert history_sync.run_next_job()
    done = history_sync.job(job_id)
    assert (done.status, done.error, done.messages_imported) == ("done", None, 3)
    assert len(stored(db, customer["id"])) == 3
