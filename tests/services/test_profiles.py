"""The background profile fetcher: consent, backoff, TTL refresh, and no duplicate fetches."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from app.clients.instagram import InstagramClient
from app.config import Settings
from app.db import create_db_engine
from app.models import User
from app.repositories import conversations, users
from app.services.profiles import ProfileFetcher
from tests.conftest import MakeSettings
from tests.helpers import (
    ACCOUNT_ID,
    Clock,
    ServiceClient,
    add_fault,
    customer_writes,
    graph_calls,
    new_customer,
    wait_for_profiles,
)
from tests.stack import SharedService


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings(
        profile_retry_seconds=300,
        profile_cache_ttl_seconds=3600,
    )


@pytest.fixture
def fetcher(
    session_factory: sessionmaker[Session], settings: Settings, clock: Clock
) -> Iterator[ProfileFetcher]:
    instagram = InstagramClient(settings)
    yield ProfileFetcher(
        session_factory=session_factory, instagram=instagram, settings=settings, clock=clock
    )
    instagram.close()


def queue(session_factory: sessionmaker[Session], *user_ids: str) -> None:
    with session_factory() as session:
        users.ensure(session, user_ids=user_ids)
        session.commit()


def stored(session_factory: sessionmaker[Session], user_id: str) -> User:
    with session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user


def profile_calls(meta: ServiceClient) -> int:
    return len(graph_calls(meta, "profile"))


def test_a_queued_profile_is_fetched_and_refreshed_after_the_ttl(
    fetcher: ProfileFetcher,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    clock: Clock,
) -> None:
    customer = new_customer(meta, username="anna", name="Anna")
    meta.post(
        f"/_sandbox/customers/{customer['id']}/messages", json={"text": "hi", "deliver": False}
    )
    queue(session_factory, customer["id"])

    assert fetcher.run_once() == 1
    fetched = stored(session_factory, customer["id"])
    assert (fetched.profile_status, fetched.username, fetched.name) == ("ok", "anna", "Anna")
    assert fetched.profile_due_at == clock.now + timedelta(seconds=3600)
    assert fetched.profile_claimed_until is None

    assert fetcher.run_once() == 0  # fresh: nothing to do
    clock.advance(seconds=3601)
    assert fetcher.run_once() == 1
    assert profile_calls(meta) == 2


def test_consent_refusal_waits_for_the_customers_next_message(
    fetcher: ProfileFetcher,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    clock: Clock,
) -> None:
    stranger = new_customer(meta, username="stranger")  # never wrote: Meta wants consent
    queue(session_factory, stranger["id"])

    assert fetcher.run_once() == 1
    refused = stored(session_factory, stranger["id"])
    assert (refused.profile_status, refused.profile_due_at) == ("consent_required", None)
    clock.advance(days=30)
    assert fetcher.run_once() == 0
    assert profile_calls(meta) == 1

    meta.post(
        f"/_sandbox/customers/{stranger['id']}/messages", json={"text": "hi", "deliver": False}
    )
    with session_factory() as session:  # the customer writes: stored as intake does
        conversations.upsert(
            session, account_id=ACCOUNT_ID, customer_id=stranger["id"], inbound_at=clock.now
        )
        session.commit()

    assert fetcher.run_once() == 1
    assert stored(session_factory, stranger["id"]).profile_status == "ok"


def test_other_failures_back_off_exponentially(
    fetcher: ProfileFetcher,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    clock: Clock,
) -> None:
    customer = new_customer(meta, username="anna")
    meta.post(
        f"/_sandbox/customers/{customer['id']}/messages", json={"text": "hi", "deliver": False}
    )
    queue(session_factory, customer["id"])
    add_fault(meta, kind="profile", status=500, error={"message": "down", "code": 2}, times=2)

    assert fetcher.run_once() == 1
    first = stored(session_factory, customer["id"])
    assert (first.profile_status, first.profile_attempts) == ("unavailable", 1)
    assert first.profile_due_at == clock.now + timedelta(seconds=300)

    clock.advance(seconds=299)
    assert fetcher.run_once() == 0
    clock.advance(seconds=2)
    assert fetcher.run_once() == 1
    second = stored(session_factory, customer["id"])
    assert second.profile_attempts == 2
    assert second.profile_due_at == clock.now + timedelta(seconds=600)

    clock.advance(seconds=601)
    assert fetcher.run_once() == 1
    assert stored(session_factory, customer["id"]).profile_status == "ok"


def test_a_known_profile_survives_a_failed_refresh(
    fetcher: ProfileFetcher,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    clock: Clock,
) -> None:
    customer = new_customer(meta, username="anna")
    meta.post(
        f"/_sandbox/customers/{customer['id']}/messages", json={"text": "hi", "deliver": False}
    )
    queue(session_factory, customer["id"])
    fetcher.run_once()
    clock.advance(seconds=3601)
    add_fault(meta, kind="profile", status=500, error={"message": "down", "code": 2})

    assert fetcher.run_once() == 1

    kept = stored(session_factory, customer["id"])
    assert (kept.profile_status, kept.username, kept.profile_attempts) == ("ok", "anna", 1)


def test_the_business_account_is_read_through_me(
    fetcher: ProfileFetcher, session_factory: sessionmaker[Session], meta: ServiceClient
) -> None:
    queue(session_factory, ACCOUNT_ID)

    fetcher.run_once()

    business = stored(session_factory, ACCOUNT_ID)
    assert (business.profile_status, business.username) == ("ok", "sandbox_business")
    assert len(graph_calls(meta, "me")) == 1
    assert profile_calls(meta) == 0


def test_a_claim_is_a_lease_another_fetcher_takes_over_when_it_expires(
    fetcher: ProfileFetcher,
    session_factory: sessionmaker[Session],
    meta: ServiceClient,
    clock: Clock,
) -> None:
    customer = new_customer(meta, username="anna")
    meta.post(
        f"/_sandbox/customers/{customer['id']}/messages", json={"text": "hi", "deliver": False}
    )
    queue(session_factory, customer["id"])
    with session_factory() as session:  # a fetcher claims, then dies before storing anything
        claimed = users.claim_due(
            session, now=clock.now, lease_until=clock.now + timedelta(seconds=60), limit=10
        )
        session.commit()
    assert claimed == [customer["id"]]

    assert fetcher.run_once() == 0  # still leased
    clock.advance(seconds=61)
    assert fetcher.run_once() == 1
    assert stored(session_factory, customer["id"]).profile_status == "ok"


def test_concurrent_fetchers_never_fetch_the_same_profile_twice(
    settings: Settings, meta: ServiceClient
) -> None:
    meta.put("/_sandbox/config", json={"latency_ms": 20})
    customers = [new_customer(meta) for _ in range(30)]
    for customer in customers:
        meta.post(
            f"/_sandbox/customers/{customer['id']}/messages", json={"text": "hi", "deliver": False}
        )
    engines = [create_db_engine(settings) for _ in range(4)]
    factories = [sessionmaker(bind=engine, expire_on_commit=False) for engine in engines]
    queue(factories[0], *(customer["id"] for customer in customers))
    fetchers = [
        ProfileFetcher(
            session_factory=factory, instagram=InstagramClient(settings), settings=settings
        )
        for factory in factories
    ]

    def drain(fetcher: ProfileFetcher) -> int:
        return sum(iter(fetcher.run_once, 0))

    with ThreadPoolExecutor(max_workers=4) as pool:
        attempted = sum(pool.map(drain, fetchers))
    for engine in engines:
        engine.dispose()

    paths = [call["path"] for call in graph_calls(meta, "profile")]
    assert attempted == len(customers)
    assert len(paths) == len(set(paths)) == len(customers)


def test_the_fetcher_thread_survives_a_failed_round(
    service: SharedService,
    meta: ServiceClient,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    claim_due = users.claim_due
    failed_in: list[str] = []

    def fails_once(session: Session, **kwargs: Any) -> list[str]:
        if not failed_in:
            failed_in.append(threading.current_thread().name)
            raise sa_exc.OperationalError("SELECT", {}, Exception("server closed the connection"))
        return claim_due(session, **kwargs)

    monkeypatch.setattr(users, "claim_due", fails_once)
    customer = new_customer(meta, username="anna", name="Anna")
    customer_writes(meta, customer["id"], "hi")

    wait_for_profiles(db, customer["id"], ACCOUNT_ID)

    assert failed_in == ["profile-fetcher"]
    [logged] = [r for r in caplog.records if r.getMessage() == "profile-fetcher: round failed"]
    assert logged.exc_info is not None
    fetched = db.get(User, customer["id"])
    assert fetched is not None
    assert (fetched.profile_status, fetched.username) == ("ok", "anna")
