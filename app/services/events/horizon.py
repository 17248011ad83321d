"""The safe horizon: the highest `seq` below which no event can still appear.

On PostgreSQL `seq` is drawn when an event is inserted, not when its transaction commits:
a transaction holding seq 10 may commit after one holding seq 11. A reader that moved its
cursor past 11 would never see 10. So readers (feed, stream, delivery dispatcher) read only
up to a horizon that no in-flight writer can fall under.

How: every transaction writing events takes a shared advisory lock before it draws a seq
(app/repositories/events.py). An observation, in one statement (one snapshot), reads the
newest committed seq M and the writers holding that lock. Any seq below M that is not
visible belongs to one of those writers (it drew its seq before M was drawn, so before the
snapshot, and it held the lock since). Once none of them is in flight any more, M is safe:
everything at or below it has committed or never will. With no writer in flight, M is safe
at once; otherwise the next observation (a poll later, ~250 ms) usually finds them gone.
On SQLite commits are serial and seqs are drawn under the write lock: M is always safe.
"""

import threading

from sqlalchemy.orm import Session

from app.repositories import events


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
            return self._safe

    @property
    def safe(self) -> int:
        with self._lock:
            return self._safe
