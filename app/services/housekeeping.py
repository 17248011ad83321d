"""Housekeeping: what the service deletes once it is old (raw webhook deliveries after
RAW_DELIVERY_RETENTION_DAYS), a little at a time, in a background thread of every process.

Every job deletes in small batches, each its own transaction, so it never holds locks long;
several processes running it at once only share the work.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.models import utcnow
from app.repositories import deliveries
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
        self.clock = clock

    def run_once(self) -> int:
        """Delete what is past its retention; how many rows went."""
        cutoff = self.clock() - self.delivery_retention
        total = 0
        while True:
            with self.session_factory() as session:
                deleted = deliveries.delete_older(session, received_before=cutoff, limit=BATCH)
                session.commit()
            total += deleted
            if deleted < BATCH:
                break
        if total:
            logger.info("deleted %d raw webhook deliveries older than %s", total, cutoff.date())
        return total


class HousekeepingWorker(BackgroundWorker):
    """The thread running a `Housekeeper` round every `interval_seconds`."""

    def __init__(self, housekeeper: Housekeeper, *, interval_seconds: float = INTERVAL_SECONDS):
        self.housekeeper = housekeeper

        def step() -> bool:
            housekeeper.run_once()
            return False  # one round per interval

        super().__init__(step, name="housekeeping", idle_seconds=interval_seconds)
