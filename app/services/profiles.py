"""The background profile fetcher: a thread started with the app, off every request path.

Each round claims the profiles that are due (new customers, stale profiles, failures whose
backoff has passed) with a lease, fetches them from Instagram and stores the outcome. Any
number of service processes may run one against the same database: the lease makes sure a
profile is fetched by one of them at a time.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.clients.instagram import InstagramClient
from app.config import Settings
from app.errors import NotFoundError
from app.models import utcnow
from app.repositories import users
from app.services.background import BackgroundWorker
from app.services.routing import AccountRemovedError
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
            users.ask_again_after_consent(session, now=now)
            claimed = users.claim_due(session, now=now, lease_until=now + lease, limit=CLAIM_BATCH)
            session.commit()
            service = UserService(
                session=session, instagram=self.instagram, settings=self.settings, clock=self.clock
            )
            for user_id in claimed:
                current = users.get(session, user_id)
                session.commit()
                try:
                    service.refresh(user_id, current=current)
                except (AccountRemovedError, NotFoundError) as exc:
                    # No served account may read it: parked until the customer writes.
                    logger.info("profile of %s not fetched: %s", user_id, exc.code)
        return len(claimed)


class ProfileWorker(BackgroundWorker):
    """The thread running `ProfileFetcher` rounds until the app stops; a full batch means
    there may be more due, so the next round starts at once."""

    def __init__(self, fetcher: ProfileFetcher, *, idle_seconds: float) -> None:
        self.fetcher = fetcher
        super().__init__(
            lambda: fetcher.run_once() >= CLAIM_BATCH,
            name="profile-fetcher",
            idle_seconds=idle_seconds,
        )
