"""The token store, the refresh job and the Graph client, wired as the service wires them, on
a fresh database (each backend) and the sandbox over HTTP, with a controllable clock."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.clients.instagram import InstagramClient
from app.config import Settings
from app.models import Account
from app.repositories import accounts
from app.services.tokens import TokenRefresher, TokenStore
from tests.conftest import MakeSettings
from tests.helpers import (
    ACCOUNT_ID,
    API_KEY,
    Clock,
    ServiceClient,
)

DAY = 24 * 60 * 60


@pytest.fixture
def make_settings(make_settings: MakeSettings) -> MakeSettings:
    """The root's settings, with the API key on and the token read from the database on
    every call (no waiting in tests), its refresh retried only after an hour."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_key": API_KEY,
            "token_cache_seconds": 0,
            "token_refresh_retry_seconds": 3600,
        }
        return make_settings(**{**values, **overrides})

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


class Process:
    """What one service process holds: a token store and the Graph client that uses it (for
    the environment's account)."""

    def __init__(
        self, settings: Settings, session_factory: sessionmaker[Session], clock: Clock
    ) -> None:
        self.store = TokenStore(settings=settings, session_factory=session_factory, clock=clock)
        self.root = InstagramClient(settings, accounts=self.store)
        self.instagram = self.root.for_account(ACCOUNT_ID)
        self.refresher = TokenRefresher(
            store=self.store, instagram=self.instagram, settings=settings, clock=clock
        )

    def close(self) -> None:
        self.root.close()


@pytest.fixture
def process(
    settings: Settings, session_factory: sessionmaker[Session], clock: Clock
) -> Iterator[Process]:
    made = Process(settings, session_factory, clock)
    yield made
    made.close()


def stored_token(session_factory: sessionmaker[Session], account_id: str = ACCOUNT_ID) -> Account:
    with session_factory() as session:
        row = accounts.get(session, account_id)
        session.commit()
    assert row is not None
    return row


def change_stored_token(session_factory: sessionmaker[Session], **values: Any) -> None:
    """Play a token state the clock alone cannot reach (e.g. a short real expiry)."""
    with session_factory() as session:
        session.execute(update(Account).where(Account.id == ACCOUNT_ID).values(**values))
        session.commit()


def sandbox_tokens(meta: ServiceClient) -> list[dict[str, Any]]:
    return meta.get("/_sandbox/tokens").json()


def update_sandbox_tokens(meta: ServiceClient, **body: Any) -> None:
    response = meta.put("/_sandbox/tokens", json=body)
    assert response.status_code == 200, response.text


def refresh_calls(meta: ServiceClient) -> int:
    calls = meta.get("/_sandbox/calls").json()
    return sum(call["kind"] == "refresh" for call in calls)


def a_day_later(process: Process, meta: ServiceClient, clock: Clock) -> None:
    """The token stored, then a day and a second go by (the sandbox's token ages too): the
    first refresh is due."""
    process.refresher.run_once()
    update_sandbox_tokens(meta, age_seconds=2 * DAY)
    clock.advance(days=1, seconds=1)
