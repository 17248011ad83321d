"""A background worker survives failed rounds and says so once, not once per round: the
first failure with its traceback, then one line a minute at most, and the recovery."""

import logging
import threading

import pytest

from app.services import background
from app.services.background import BackgroundWorker
from tests.helpers import wait_until


def test_failed_rounds_are_logged_once_with_a_traceback_then_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []
    done = threading.Event()

    def step() -> bool:
        rounds.append(len(rounds))
        if len(rounds) <= 5:
            raise ConnectionError("the database is down")
        done.set()
        return False

    worker = BackgroundWorker(step, name="flaky", idle_seconds=0.001)
    with caplog.at_level(logging.INFO, logger=background.__name__):
        worker.start()
        wait_until(done.is_set, what="a round that succeeds")
        worker.stop()

    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        ("ERROR", "flaky: round failed", True),
        ("WARNING", "flaky: rounds succeed again after 5 failed", False),
    ]


def test_a_long_failure_is_recalled_once_a_minute(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(background, "REPEAT_LOG_SECONDS", 0.0)  # every round is a minute later
    failures = threading.Semaphore(0)

    def step() -> bool:
        failures.release()
        raise ConnectionError("the database is down")

    worker = BackgroundWorker(step, name="down", idle_seconds=0.001)
    with caplog.at_level(logging.INFO, logger=background.__name__):
        worker.start()
        for _ in range(3):
            assert failures.acquire(timeout=10)
        worker.stop()

    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "down: round failed"
    assert (
        messages[1]
        == "down: round failed again (2 in a row): ConnectionError: the database is down"
    )
