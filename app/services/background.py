"""A background thread repeating one step of work until the app stops (profile fetches, token
refreshes): started and stopped by `create_app`'s lifespan."""

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


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
            except Exception:
                # A database or network hiccup must not kill the thread: log, wait, go on.
                logger.exception("%s: round failed", self.name)
                busy = False
            finally:
                with self._state:
                    self._in_round = False
                    self._state.notify_all()
            if not busy:
                self._wake.wait(self.idle_seconds)
            self._wake.clear()
