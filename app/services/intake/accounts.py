"""What intake asks of `accounts` on every delivery, remembered by each process.

Every delivery asks which of its entries' accounts are served, and moves their webhook
clocks (`last_webhook_at`, which the accounts API shows). Asked of the database each time,
those two statements cost a fifth of a one-event delivery, for answers that hardly ever
change. So each process remembers:

- a served account, for SERVED_SECONDS. An account not served (unknown, or removed) is asked
  about every time, so an account added anywhere is served from its next delivery on; a
  removal is seen at once by the process that made it and within SERVED_SECONDS by others.
- when it last moved an account's clock: the statement runs again only WEBHOOK_CLOCK_STEP
  later (sooner, its WHERE would leave the row alone anyway).
"""

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from app.repositories import accounts
from app.repositories.accounts import WEBHOOK_CLOCK_STEP

SERVED_SECONDS = 1.0


class IntakeAccounts:
    """One per process, shared by every request thread (thread-safe)."""

    def __init__(
        self,
        *,
        served_seconds: float = SERVED_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._served_seconds = served_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._served_until: dict[str, float] = {}  # account → when to ask again
        self._clock_moved: dict[str, datetime] = {}  # account → the clock this process set

    def served_among(self, session: Session, account_ids: Iterable[str]) -> set[str]:
        """Which of these accounts the service serves (any status but removed)."""
        wanted = set(account_ids)
        now = self._monotonic()
        with self._lock:
            known = {id for id in wanted if self._served_until.get(id, 0.0) > now}
        unsure = wanted - known
        if not unsure:
            return known
        served = accounts.served_among(session, unsure)
        with self._lock:
            for account_id in served:
                self._served_until[account_id] = now + self._served_seconds
        return known | served

    def touch_webhook_clock(
        self, session: Session, *, account_ids: Iterable[str], now: datetime
    ) -> None:
        """Move the accounts' last_webhook_at to `now`, unless this process moved it less
        than WEBHOOK_CLOCK_STEP ago."""
        with self._lock:
            due = [
                id
                for id in account_ids
                if (moved := self._clock_moved.get(id)) is None or now - moved > WEBHOOK_CLOCK_STEP
            ]
        if not due:
            return
        accounts.touch_webhook_clock(session, account_ids=due, now=now)
        with self._lock:
            for account_id in due:
                self._clock_moved[account_id] = now

    def forget(self, account_id: str | None = None) -> None:
        """Ask the database again about this account (every account: None), as when it was
        removed by this process."""
        with self._lock:
            if account_id is None:
                self._served_until.clear()
                self._clock_moved.clear()
            else:
                self._served_until.pop(account_id, None)
                self._clock_moved.pop(account_id, None)
