"""Housekeeping: what the service deletes once it is old (raw webhook deliveries after
RAW_DELIVERY_RETENTION_DAYS, archived media bytes after MEDIA_RETENTION_DAYS, media rows
whose message is gone, events and their deliveries after EVENTS_RETENTION_DAYS), a little
at a time, in a background thread of every process.

Every job deletes in small batches, each its own transaction, so it never holds locks long;
several processes running it at once only share the work.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.models import utcnow
from app.repositories import deliveries, events, media
from app.services.background import BackgroundWorker
from app.services.media.downloads import release_bytes
from app.services.media.storage import MediaStore

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
        store: MediaStore | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.delivery_retention = timedelta(days=settings.raw_delivery_retention_days)
        days = settings.media_retention_days
        self.media_retention = timedelta(days=days) if days else None
        self.event_retention = timedelta(days=settings.events_retention_days)
        self.store = store
        self.clock = clock

    def run_once(self) -> int:
        """Delete what is past its retention; how many rows (or files) went."""
        cutoff = self.clock() - self.delivery_retention
        total = self._in_batches(
            lambda session: deliveries.delete_older(session, received_before=cutoff, limit=BATCH)
        )
        if total:
            logger.info("deleted %d raw webhook deliveries older than %s", total, cutoff.date())
        return total + self._media() + self._events()

    def _events(self) -> int:
        """Events past EVENTS_RETENTION_DAYS, with their deliveries to webhook endpoints."""
        before = self.clock() - self.event_retention
        gone = self._in_batches(
            lambda session: events.delete_older(session, created_before=before, limit=BATCH)
        )
        if gone:
            logger.info("deleted %d events older than %s", gone, before.date())
        return gone

    def _media(self) -> int:
        """Archived bytes past MEDIA_RETENTION_DAYS (the URL stays), and the rows of media
        whose message is gone once their bytes are."""
        total = 0
        if self.store is not None and self.media_retention is not None:
            store, before = self.store, self.clock() - self.media_retention

            def expire(session: Session) -> int:
                rows = media.stored_before(session, before=before, limit=BATCH)
                release_bytes(session, store, rows)
                return len(rows)

            purged = self._in_batches(expire)
            if purged:
                logger.info(
                    "deleted the archived bytes of %d media stored before %s", purged, before.date()
                )
            total += purged
        return total + self._in_batches(lambda session: media.delete_orphans(session, limit=BATCH))

    def _in_batches(self, job: Callable[[Session], int]) -> int:
        """Run `job` (one batch, its own transaction) until it does less than a full batch."""
        total = 0
        while True:
            with self.session_factory() as session:
                done = job(session)
                session.commit()
            total += done
            if done < BATCH:
                return total


class HousekeepingWorker(BackgroundWorker):
    """The thread running a `Housekeeper` round every `interval_seconds`."""

    def __init__(self, housekeeper: Housekeeper, *, interval_seconds: float = INTERVAL_SECONDS):
        self.housekeeper = housekeeper

        def step() -> bool:
            housekeeper.run_once()
            return False  # one round per interval

        super().__init__(step, name="housekeeping", idle_seconds=interval_seconds)
