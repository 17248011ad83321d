"""The token lifecycle: stored encrypted, refreshed by the timing rules (a controllable clock),
once across processes, used everywhere at once; 190 marks it, a success clears the mark."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.clients.instagram_errors import TokenInvalidError
from app.config import Settings
from app.db import create_db_engine
from app.models import Account
from app.services.tokens import ASSUMED_LIFETIME, fingerprint
from tests.helpers import ACCOUNT_ID, USER_TOKEN, Clock, ServiceClient, add_fault
from tests.ops.conftest import (
    DAY,
    MakeSettings,
    Process,
    a_day_later,
    change_stored_token,
    refresh_calls,
    sandbox_tokens,
    stored_token,
    update_sandbox_tokens,
)


def test_the_configured_token_is_stored_encrypted_with_an_assumed_expiry(
    process: Process, session_factory: sessionmaker[Session], clock: Clock, meta: ServiceClient
) -> None:
    assert process.refresher.run_once() is False

    row = stored_token(session_factory)
    assert row.configured_token_sha256 == fingerprint(USER_TOKEN)
    assert USER_TOKEN not in row.access_token
    assert process.store.cipher.open(row.access_token or "") == USER_TOKEN
    assert (row.issued_at, row.expires_at) == (clock.now, clock.now + ASSUMED_LIFETIME)
    assert row.expiry_assumed is True
    assert refresh_calls(meta) == 0
    assert process.store.status(ACCOUNT_ID).state == "valid"


def test_a_token_is_refreshed_once_it_is_a_day_old_and_used_at_once(
    process: Process, session_factory: sessionmaker[Session], clock: Clock, meta: ServiceClient
) -> None:
    process.refresher.run_once()
    update_sandbox_tokens(meta, age_seconds=2 * DAY)  # Meta's side of the same day

    clock.advance(hours=23, minutes=59)
    assert process.refresher.run_once() is False
    assert refresh_calls(meta) == 0

    clock.advance(minutes=2)
    refreshed_before = metrics.TOKEN_REFRESHES.labels(account=ACCOUNT_ID, outcome="ok")._value.get()
    assert process.refresher.run_once() is True

    fresh = sandbox_tokens(meta)[-1]["value"]
    row = stored_token(session_factory)
    assert process.store.cipher.open(row.access_token or "") == fresh
    assert (row.refreshed_at, row.issued_at) == (clock.now, clock.now)
    assert row.expires_at == clock.now + timedelta(days=60)  # from Meta's expires_in
    assert row.expiry_assumed is False
    assert (
        metrics.TOKEN_REFRESHES.labels(account=ACCOUNT_ID, outcome="ok")._value.get()
        == refreshed_before + 1
    )
    # The old token dies: calls go on with the new one, no restart.
    update_sandbox_tokens(meta, token=USER_TOKEN, revoked=True)
    assert process.instagram.get_me()["user_id"]


def test_a_known_expiry_is_refreshed_within_the_configured_days(
    process: Process, clock: Clock, meta: ServiceClient
) -> None:
    a_day_later(process, meta, clock)
    assert process.refresher.run_once() is True  # learns the real expiry: 60 days from now
    update_sandbox_tokens(meta, age_seconds=2 * DAY)

    clock.advance(days=49, hours=23, minutes=59)  # 10 days and a minute left
    assert process.refresher.run_once() is False
    clock.advance(minutes=2)
    assert process.refresher.run_once() is True
    assert refresh_calls(meta) == 2
    assert process.store.status(ACCOUNT_ID).state == "valid"


def test_a_token_younger_than_a_day_is_not_refreshed_even_close_to_expiry(
    process: Process, session_factory: sessionmaker[Session], clock: Clock, meta: ServiceClient
) -> None:
    process.refresher.run_once()
    change_stored_token(
        session_factory,
        issued_at=clock.now - timedelta(hours=1),
        expires_at=clock.now + timedelta(days=3),
        expiry_assumed=False,
    )
    update_sandbox_tokens(meta, age_seconds=2 * DAY)

    clock.advance(hours=22)
    assert process.refresher.run_once() is False
    assert process.store.status(ACCOUNT_ID).state == "expiring"
    clock.advance(hours=2)
    assert process.refresher.run_once() is True


def test_the_refresh_window_is_a_setting(
    make_settings: MakeSettings,
    session_factory: sessionmaker[Session],
    clock: Clock,
    meta: ServiceClient,
) -> None:
    process = Process(make_settings(token_refresh_days_before_expiry=30), session_factory, clock)
    process.refresher.run_once()
    change_stored_token(
        session_factory,
        issued_at=clock.now - timedelta(days=2),
        expires_at=clock.now + timedelta(days=31),
        expiry_assumed=False,
    )
    update_sandbox_tokens(meta, age_seconds=2 * DAY)

    assert process.refresher.run_once() is False
    clock.advance(days=1, seconds=1)
    assert process.refresher.run_once() is True
    process.close()


def test_a_failed_refresh_keeps_the_token_and_retries_after_the_delay(
    process: Process, session_factory: sessionmaker[Session], clock: Clock, meta: ServiceClient
) -> None:
    a_day_later(process, meta, clock)
    add_fault(meta, kind="refresh", status=500, error={"message": "down", "code": 2})
    failed_before = metrics.TOKEN_REFRESHES.labels(
        account=ACCOUNT_ID, outcome="failed"
    )._value.get()

    assert process.refresher.run_once() is False

    row = stored_token(session_factory)
    assert process.store.cipher.open(row.access_token or "") == USER_TOKEN
    assert row.refresh_error is not None
    assert "down" in row.refresh_error
    assert row.refresh_claimed_until == clock.now + timedelta(seconds=3600)
    assert (
        metrics.TOKEN_REFRESHES.labels(account=ACCOUNT_ID, outcome="failed")._value.get()
        == failed_before + 1
    )
    clock.advance(seconds=3599)
    assert process.refresher.run_once() is False
    assert refresh_calls(meta) == 1
    clock.advance(seconds=2)
    assert process.refresher.run_once() is True
    assert stored_token(session_factory).refresh_error is None


def test_a_rejected_token_is_marked_and_the_first_success_clears_the_mark(
    process: Process,
    session_factory: sessionmaker[Session],
    clock: Clock,
    meta: ServiceClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    process.refresher.run_once()
    update_sandbox_tokens(meta, revoked=True)

    with pytest.raises(TokenInvalidError) as rejected:
        process.instagram.get_me()

    assert rejected.value.code == "instagram_token_invalid"
    row = stored_token(session_factory)
    assert row.invalid_since == clock.now
    assert row.invalid_reason is not None
    assert "190/460" in row.invalid_reason
    status = process.store.status(ACCOUNT_ID)
    assert status.state == "invalid"
    assert "INSTAGRAM_USER_TOKEN" in status.detail
    assert "re-authentication needed" in caplog.text
    assert "INSTAGRAM_USER_TOKEN" in caplog.text

    clock.advance(minutes=5)
    with pytest.raises(TokenInvalidError):  # the mark only reports: calls still go out
        process.instagram.get_me()
    assert stored_token(session_factory).invalid_since == clock.now - timedelta(minutes=5)
    assert len([c for c in meta.get("/_sandbox/calls").json() if c["kind"] == "me"]) == 2

    update_sandbox_tokens(meta, revoked=False)
    process.instagram.get_me()

    row = stored_token(session_factory)
    assert (row.invalid_since, row.invalid_reason) == (None, None)
    assert process.store.status(ACCOUNT_ID).state == "valid"


def test_a_refresh_rejected_with_190_marks_the_token(
    process: Process, session_factory: sessionmaker[Session], clock: Clock, meta: ServiceClient
) -> None:
    process.refresher.run_once()
    update_sandbox_tokens(meta, age_seconds=2 * DAY, expires_in_seconds=-1)
    clock.advance(days=1, seconds=1)

    assert process.refresher.run_once() is False

    row = stored_token(session_factory)
    assert row.invalid_since is not None
    assert row.refresh_error is not None
    assert process.store.status(ACCOUNT_ID).state == "invalid"


def test_a_newly_configured_token_replaces_the_stored_one(
    process: Process,
    make_settings: MakeSettings,
    session_factory: sessionmaker[Session],
    clock: Clock,
    meta: ServiceClient,
) -> None:
    a_day_later(process, meta, clock)
    process.refresher.run_once()
    update_sandbox_tokens(meta, revoked=True)
    with pytest.raises(TokenInvalidError):
        process.instagram.get_me()  # marked invalid

    new_token = "IGAAnewly-configured-token"
    restarted = Process(make_settings(instagram_user_token=new_token), session_factory, clock)
    restarted.refresher.run_once()

    assert restarted.store.current(ACCOUNT_ID) == new_token
    assert restarted.store.status(ACCOUNT_ID).state == "valid"  # the mark was the old token's
    row = stored_token(session_factory)
    assert restarted.store.cipher.open(row.access_token or "") == new_token
    assert row.configured_token_sha256 == fingerprint(new_token)
    restarted.close()
    with session_factory() as session:  # one row per account, whatever the tokens
        assert len(session.scalars(select(Account)).all()) == 1


def test_processes_racing_to_refresh_refresh_once(
    settings: Settings, clock: Clock, meta: ServiceClient
) -> None:
    engines = [create_db_engine(settings) for _ in range(4)]
    processes = [
        Process(settings, sessionmaker(bind=engine, expire_on_commit=False), clock)
        for engine in engines
    ]
    processes[0].refresher.run_once()
    update_sandbox_tokens(meta, age_seconds=2 * DAY)
    meta.put("/_sandbox/config", json={"latency_ms": 100})
    clock.advance(days=1, seconds=1)

    with ThreadPoolExecutor(max_workers=len(processes)) as pool:
        refreshed = list(pool.map(lambda process: process.refresher.run_once(), processes))

    assert sorted(refreshed) == [False, False, False, True]
    assert refresh_calls(meta) == 1
    fresh = sandbox_tokens(meta)[-1]["value"]
    assert {process.store.current(ACCOUNT_ID) for process in processes} == {fresh}
    for process in processes:
        process.close()
    for engine in engines:
        engine.dispose()


def test_without_a_token_there_is_nothing_to_store_or_refresh(
    make_settings: MakeSettings, session_factory: sessionmaker[Session], clock: Clock
) -> None:
    process = Process(make_settings(instagram_user_token=None), session_factory, clock)

    assert process.refresher.run_once() is False
    assert process.store.current(ACCOUNT_ID) is None
    # The configured INSTAGRAM_ACCOUNT_ID is served (webhooks apply), with no token to call with.
    assert process.store.status(ACCOUNT_ID).state == "unknown"
    assert stored_token(session_factory).access_token is None
