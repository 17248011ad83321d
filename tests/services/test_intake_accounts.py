"""What intake remembers of `accounts` per process: a served account for a second, an account
not served asked about every time, the webhook clock moved once a minute — each checked by the
statements it runs and the rows it leaves, on both databases."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, create_engine, select, update
from sqlalchemy.orm import Session

from app.models import Account, utcnow
from app.services.intake.accounts import SERVED_SECONDS, IntakeAccounts
from tests.helpers import StatementCounter


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_engine(database_url)
    yield made
    made.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as made:
        made.add_all([Account(id="1001", username="one"), Account(id="1002", username="two")])
        made.commit()
        yield made


def set_status(session: Session, account_id: str, status: str) -> None:
    session.execute(update(Account).where(Account.id == account_id).values(status=status))
    session.commit()


def test_a_served_account_is_remembered_for_a_second_then_asked_again(
    engine: Engine, session: Session
) -> None:
    ticks = Ticks()
    seen = IntakeAccounts(monotonic=ticks)
    assert seen.served_among(session, {"1001", "1002"}) == {"1001", "1002"}

    set_status(session, "1001", "removed")  # by another process
    with StatementCounter(engine) as asked:
        assert seen.served_among(session, {"1001", "1002"}) == {"1001", "1002"}
    assert asked.statements == []

    ticks.now += SERVED_SECONDS
    with StatementCounter(engine) as asked:
        assert seen.served_among(session, {"1001", "1002"}) == {"1002"}
    assert len(asked.statements) == 1


def test_an_account_not_served_is_asked_about_every_time(session: Session) -> None:
    seen = IntakeAccounts(monotonic=Ticks())
    assert seen.served_among(session, {"1003"}) == set()

    session.add(Account(id="1003", username="three"))  # added by another process
    session.commit()
    assert seen.served_among(session, {"1003"}) == {"1003"}


def test_a_removal_in_this_process_is_seen_at_once(session: Session) -> None:
    seen = IntakeAccounts(monotonic=Ticks())
    assert seen.served_among(session, {"1001"}) == {"1001"}

    set_status(session, "1001", "removed")
    seen.forget("1001")
    assert seen.served_among(session, {"1001"}) == set()


def test_the_webhook_clock_moves_once_a_step_per_process(engine: Engine, session: Session) -> None:
    seen = IntakeAccounts(monotonic=Ticks())
    first = utcnow()

    def clock_of(account_id: str) -> object:
        session.expire_all()
        return session.scalar(select(Account.last_webhook_at).where(Account.id == account_id))

    seen.touch_webhook_clock(session, account_ids={"1001"}, now=first)
    session.commit()
    assert clock_of("1001") == first
    assert clock_of("1002") is None

    with StatementCounter(engine) as asked:
        seen.touch_webhook_clock(session, account_ids={"1001"}, now=first + timedelta(minutes=1))
    assert asked.statements == []

    later = first + timedelta(minutes=1, seconds=1)
    seen.touch_webhook_clock(session, account_ids={"1001", "1002"}, now=later)
    session.commit()
    assert (clock_of("1001"), clock_of("1002")) == (later, later)
