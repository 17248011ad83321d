"""Housekeeping: what the service deletes once it is old (raw webhook deliveries after
RAW_DELIVERY_RETENTION_DAYS; events and their deliveries to webhook endpoints after
EVENTS_RETENTION_DAYS), a little at a time, in a background thread of every process.

Every job deletes in small batches, each its own transaction, so it never holds locks long;
several processes running it at once only share the work.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.models import utcnow
from app.repositories import deliveries, events
from app.services.background import BackgroundWorker

logger = logging.getLogger(__name__)

BATCH = 1000
INTERVAL_SECONDS = 3600.0


class Housekeeper:
    """One round: every retention job, until each has nothing more to delete."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.delivery_retention = timedelta(days=settings.raw_delivery_retention_days)
        self.event_retention = timedelta(days=settings.events_retention_days)
        self.clock = clock

    def run_once(self) -> int:
        """Delete what is past its retention; how many rows went."""
        now = self.clock()
        cutoff = now - self.delivery_retention
        total = self._in_batches(
            lambda session: deliveries.delete_older(session, received_before=cutoff, limit=BATCH)
        )
        if total:
            logger.info("deleted %d raw webhook deliveries older than %s", total, cutoff.date())
        event_cutoff = now - self.event_retention
        # Their deliveries to webhook endpoints go with them (ON DELETE CASCADE).
        gone = self._in_batches(
            lambda session: events.delete_older(session, created_before=event_cutoff, limit=BATCH)
        )
        if gone:
            logger.info("deleted %d events older than %s", gone, event_cutoff.date())
        return total + gone

    def _in_batches(self, delete_some: Callable[[Session], int]) -> int:
        """Run `delete_some` (a batch each, its own transaction) until it deletes less."""
        total = 0
        while True:
            with self.session_factory() as session:
                deleted = delete_some(session)
                session.commit()
            total += deleted
            if deleted < BATCH:
                return total


class HousekeepingWorker(BackgroundWorker):
    """The thread running a `Housekeeper` round every `interval_seconds`."""

    def __init__(self, housekeeper: Housekeeper, *, interval_seconds: float = INTERVAL_SECONDS):
        self.housekeeper = housekeeper

        def step() -> bool:
            housekeeper.run_once()
            return False  # one round per interval

        super().__init__(step, name="housekeeping", idle_seconds=interval_seconds)
