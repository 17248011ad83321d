"""The background profile fetcher: a thread started with the app, off every request path.

Each round claims the profiles that are due (new customers, stale profiles, failures whose
backoff has passed) with a lease, fetches them from Instagram and stores the outcome. Any
number of service processes may run one against the same database: the lease makes sure a
profile is fetched by one of them at a time.
"""

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.clients.instagram import InstagramClient
from app.config import Settings
from app.models import utcnow
from app.repositories import users
from app.services.users import UserService

logger = logging.getLogger(__name__)

CLAIM_BATCH = 10


class ProfileFetcher:
    """One round of background fetching; `run_once` is what the thread repeats."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        instagram: InstagramClient,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.instagram = instagram
        self.settings = settings
        self.clock = clock

    def run_once(self) -> int:
        """Fetch the profiles due now (one batch); return how many were attempted."""
        now = self.clock()
        lease = timedelta(seconds=self.settings.profile_claim_seconds)
        with self.session_factory() as session:
            claimed = users.claim_due(session, now=now, lease_until=now + lease, limit=CLAIM_BATCH)
            session.commit()
            service = UserService(
                session=session, instagram=self.instagram, settings=self.settings, clock=self.clock
            )
            for user_id in claimed:
                current = users.get(session, user_id)
                session.commit()
                service.refresh(user_id, current=current)
        return len(claimed)


class ProfileWorker:
    """A daemon thread running `ProfileFetcher` rounds until the app stops."""

    def __init__(self, fetcher: ProfileFetcher, *, idle_seconds: float) -> None:
        self.fetcher = fetcher
        self.idle_seconds = idle_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="profile-fetcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                attempted = self.fetcher.run_once()
            except Exception:
                # A database or network hiccup must not kill the thread: log, wait, go on.
                logger.exception("profile fetch round failed")
                attempted = 0
            if attempted < CLAIM_BATCH:
                self._stop.wait(self.idle_seconds)
