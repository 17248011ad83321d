"""A background thread repeating one step of work until the app stops (profile fetches, token
refreshes): started and stopped by `create_app`'s lifespan."""

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# While rounds keep failing (the database is down, say), the first failure is logged with its
# traceback, then one line at most this often, and the recovery once.
REPEAT_LOG_SECONDS = 60.0


class WorkerThread(threading.Thread):
    """The thread of a background worker (tests tell its SQL from the requests')."""


class BackgroundWorker:
    """A daemon thread running `step` again and again; after a step that returns False (nothing
    more to do now) it waits `idle_seconds` before the next one."""

    def __init__(self, step: Callable[[], bool], *, name: str, idle_seconds: float) -> None:
        self.step = step
        self.name = name
        self.idle_seconds = idle_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()  # ends an idle wait early: work has come
        self._thread = WorkerThread(target=self._run, name=name, daemon=True)
        # pause(): no round starts until resume(); the one running finishes first.
        self._state = threading.Condition()
        self._paused = False
        self._in_round = False
        self._failures = 0  # rounds failed in a row
        self._logged_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Start the next round now rather than after the idle wait (work was queued)."""
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        with self._state:
            self._state.notify_all()
        self._thread.join(timeout)

    def pause(self) -> None:
        """Return once the round in progress (if any) is over; start none until `resume()`.
        (A test suite sharing one service between tests resets its database meanwhile.)"""
        with self._state:
            self._paused = True
            self._state.wait_for(lambda: not self._in_round)

    def resume(self) -> None:
        with self._state:
            self._paused = False
            self._state.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._state:
                self._state.wait_for(lambda: not self._paused or self._stop.is_set())
                if self._stop.is_set():
                    return
                self._in_round = True
            try:
                busy = self.step()
            except Exception as exc:
                # A database or network hiccup must not kill the thread: log, wait, go on.
                self._failed(exc)
                busy = False
            else:
                self._recovered()
            finally:
                with self._state:
                    self._in_round = False
                    self._state.notify_all()
            if not busy:
                self._wake.wait(self.idle_seconds)
            self._wake.clear()

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        if self._failures == 1:
            logger.error("%s: round failed", self.name, exc_info=exc)
            self._logged_at = now
        elif now - self._logged_at >= REPEAT_LOG_SECONDS:
            logger.error(
                "%s: round failed again (%d in a row): %s: %s",
                self.name,
                self._failures,
                type(exc).__name__,
                exc,
            )
            self._logged_at = now

    def _recovered(self) -> None:
        if self._failures:
            logger.warning("%s: rounds succeed again after %d failed", self.name, self._failures)
            self._failures = 0
