"""The safe horizon: the highest `seq` below which no event can still appear.

On PostgreSQL `seq` is drawn when an event is inserted, not when its transaction commits:
a transaction holding seq 10 may commit after one holding seq 11. A reader that moved its
cursor past 11 would never see 10. So readers (feed, stream, delivery dispatcher) read only
up to a horizon that no in-flight writer can fall under.

How: every transaction writing events takes a shared advisory lock before it draws a seq
(a BEFORE INSERT statement trigger on `events` takes it, whoever writes: app/models.py,
migration 0015). An observation, in one statement (one snapshot), reads the newest
committed seq M and the writers holding that lock. Any seq below M that is not
visible belongs to one of those writers (it drew its seq before M was drawn, so before the
snapshot, and it held the lock since). Once none of them is in flight any more, M is safe:
everything at or below it has committed or never will. With no writer in flight, M is safe
at once; otherwise the next observation (a poll later, ~250 ms) usually finds them gone.
On SQLite commits are serial and seqs are drawn under the write lock: M is always safe.
"""

import threading
import time

from sqlalchemy.orm import Session

from app.repositories import events

# How long a feed request waits for writers in flight (they hold the lock for milliseconds).
CATCH_UP_SECONDS = 0.25


class Horizon:
    """One per process, shared by every reader in it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._safe = 0
        # Observations not yet safe: the writers then in flight → the newest seq then.
        self._waiting: dict[frozenset[str], int] = {}

    def advance(self, session: Session) -> int:
        """Observe the outbox now (a statement of its own in `session`) and return the safe
        horizon."""
        return self._observe(session)[1]

    def catch_up(self, session: Session, *, within: float = CATCH_UP_SECONDS) -> int:
        """The safe horizon, having waited (up to `within`) for the event writers in flight
        now: a reader asking right after its own writes were acknowledged sees them, even
        when another writer was committing at that moment."""
        newest, safe = self._observe(session)
        deadline = time.monotonic() + within
        pause = 0.002
        while safe < newest and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            safe = self._observe(session)[1]
        return safe

    def _observe(self, session: Session) -> tuple[int, int]:
        """(the newest committed seq, the safe horizon) after one observation."""
        newest, writers = events.observe(session)
        session.rollback()  # the next observation must take a fresh snapshot
        with self._lock:
            if writers:
                self._waiting[writers] = max(newest, self._waiting.get(writers, 0))
            else:
                # Not max(): a database replaced under the process (tests) starts again at 0.
                self._safe = newest
                self._waiting.clear()
            for waited_for, seq in list(self._waiting.items()):
                if not waited_for & writers:
                    self._safe = max(self._safe, seq)
                    del self._waiting[waited_for]
            return newest, self._safe

    @property
    def safe(self) -> int:
        with self._lock:
            return self._safe
