"""The safe horizon: on PostgreSQL a transaction holding a lower seq may commit after one
holding a higher seq; readers must wait for it instead of skipping it."""

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from app.models import utcnow
from app.repositories import events
from app.services.events.horizon import Horizon
from tests.conftest import Databases


@pytest.fixture
def engine(databases: Databases) -> Iterator[Engine]:
    made = create_engine(databases.new())
    yield made
    made.dispose()


def write_event(session: Session, name: str) -> None:
    row = {
        "id": f"evt_{name}",
        "type": "message.received",
        "account_id": None,
        "conversation": None,
        "payload": {},
        "created_at": utcnow(),
    }
    events.add_many(session, [row])


def seqs(session: Session, up_to: int) -> list[str]:
    rows = events.page(session, after=0, up_to=up_to, limit=100)
    session.rollback()
    return [row.id for row in rows]


def test_a_seq_committed_late_is_read_not_skipped(engine: Engine, databases: Databases) -> None:
    if databases.backend != "postgresql":
        pytest.skip("SQLite draws seqs under its write lock: they commit in order")
    horizon = Horizon()
    with Session(engine) as early, Session(engine) as late, Session(engine) as reader:
        write_event(early, "early")  # draws the lower seq, commits last
        write_event(late, "late")
        late.commit()

        before = horizon.advance(reader)
        assert seqs(reader, before) == []  # "late" is committed but not safe yet

        early.commit()
        after = horizon.advance(reader)
        assert seqs(reader, after) == ["evt_early", "evt_late"]


def test_with_no_writer_in_flight_everything_committed_is_safe(engine: Engine) -> None:
    horizon = Horizon()
    with Session(engine) as writer, Session(engine) as reader:
        write_event(writer, "one")
        write_event(writer, "two")
        writer.commit()

        assert seqs(reader, horizon.advance(reader)) == ["evt_one", "evt_two"]


def test_catching_up_waits_for_a_writer_committing_now(
    engine: Engine, databases: Databases
) -> None:
    """The feed's read: what was acknowledged before it asked is shown, even while another
    event writer is in flight (it ends within the wait), and no writer is waited for forever."""
    if databases.backend != "postgresql":
        pytest.skip("SQLite: no writer is ever in flight for a reader")
    horizon = Horizon()
    with Session(engine) as mine, Session(engine) as other, Session(engine) as reader:
        write_event(mine, "mine")
        mine.commit()  # acknowledged
        write_event(other, "other")  # in flight while the reader asks

        committer = threading.Timer(0.05, other.commit)
        committer.start()
        try:
            assert seqs(reader, horizon.catch_up(reader, within=5)) == ["evt_mine", "evt_other"]
        finally:
            committer.join()

        write_event(other, "stuck")  # never ends while the reader waits
        started = time.monotonic()
        assert seqs(reader, horizon.catch_up(reader, within=0.1)) == ["evt_mine", "evt_other"]
        assert time.monotonic() - started < 5
        other.rollback()


def test_an_event_writer_in_another_database_is_not_waited_for(
    engine: Engine, databases: Databases
) -> None:
    # Advisory locks are per database, but pg_locks lists every database's: another
    # deployment (or test run) on the same cluster must not hold this one's horizon back.
    if databases.backend != "postgresql":
        pytest.skip("SQLite: no writer is ever in flight for a reader")
    elsewhere = create_engine(engine.url.set(database="postgres", query={}))
    horizon = Horizon()
    try:
        with Session(engine) as writer, Session(engine) as reader, elsewhere.connect() as other:
            write_event(writer, "one")
            writer.commit()
            other.execute(
                text("SELECT pg_advisory_xact_lock_shared(:classid, :objid)"),
                {"classid": events.WRITER_LOCK[0], "objid": events.WRITER_LOCK[1]},
            )  # a writer in flight there, its transaction open

            assert seqs(reader, horizon.advance(reader)) == ["evt_one"]
    finally:
        elsewhere.dispose()
