"""The refresh job: renews the stored token with `ig_refresh_token` before it expires, one
process at a time (a lease on the token's row)."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from app import metrics
from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.config import Settings
from app.models import utcnow
from app.repositories import tokens
from app.services.background import BackgroundWorker
from app.services.tokens.store import ASSUMED_LIFETIME, TokenStore

logger = logging.getLogger(__name__)

MIN_REFRESH_AGE = timedelta(hours=24)  # Meta refreshes only tokens at least a day old
REFRESH_LEASE = timedelta(minutes=5)  # far longer than a refresh call takes


class TokenRefresher:
    """One round of the refresh job; `run_once` is what the thread repeats."""

    def __init__(
        self,
        *,
        store: TokenStore,
        instagram: InstagramClient,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.instagram = instagram
        self.retry_delay = timedelta(seconds=settings.token_refresh_retry_seconds)
        self.clock = clock

    def run_once(self) -> bool:
        """Store the configured token if new; refresh it if due. True when it was refreshed."""
        if self.store.configured is None:
            return False
        now = self.clock()
        if not self._claim(now=now):
            return False
        self.store.forget()  # call with the token just claimed
        try:
            answer = self.instagram.refresh_access_token()
        except InstagramError as exc:
            self._failed(exc, now=now)
            return False
        self._refreshed(answer, now=now)
        return True

    def _claim(self, *, now: datetime) -> bool:
        """Adopt the configured token; claim it for a refresh if one is due (a lease)."""
        store = self.store
        with store.session_factory() as session:
            store.adopt_configured(session, now=now)
            claimed = tokens.claim_refresh(
                session,
                fingerprint=store.fingerprint,
                now=now,
                issued_before=now - MIN_REFRESH_AGE,
                expires_before=now + store.refresh_window,
                lease_until=now + REFRESH_LEASE,
            )
            session.commit()
        return claimed

    def _refreshed(self, answer: dict[str, Any], *, now: datetime) -> None:
        """Store Meta's new token and its expiry (assumed when the answer does not say)."""
        expires_in = answer.get("expires_in")
        seconds = expires_in if isinstance(expires_in, int | float) and expires_in > 0 else None
        expires_at = now + (ASSUMED_LIFETIME if seconds is None else timedelta(seconds=seconds))
        store = self.store
        with store.session_factory() as session:
            tokens.save_refreshed(
                session,
                fingerprint=store.fingerprint,
                access_token=store.encrypt(answer["access_token"]),
                now=now,
                expires_at=expires_at,
                expiry_assumed=seconds is None,
            )
            store.announce(session, now=now)
            session.commit()
        store.forget()
        metrics.TOKEN_REFRESHES.labels(outcome="ok").inc()
        logger.info("access token refreshed; it expires %s", f"{expires_at:%Y-%m-%d %H:%M} UTC")

    def _failed(self, error: InstagramError, *, now: datetime) -> None:
        retry_at = now + self.retry_delay
        with self.store.session_factory() as session:
            tokens.save_refresh_failure(
                session,
                fingerprint=self.store.fingerprint,
                error=error.message,
                retry_at=retry_at,
                now=now,
            )
            session.commit()
        metrics.TOKEN_REFRESHES.labels(outcome="failed").inc()
        logger.error(
            "access token refresh failed (%s: %s); next try after %s",
            error.code,
            error.message,
            f"{retry_at:%Y-%m-%d %H:%M} UTC",
        )


class TokenWorker(BackgroundWorker):
    """The thread running a `TokenRefresher` round every `interval_seconds`."""

    def __init__(self, refresher: TokenRefresher, *, interval_seconds: float) -> None:
        self.refresher = refresher

        def step() -> bool:
            refresher.run_once()
            return False  # one round per interval

        super().__init__(step, name="token-refresher", idle_seconds=interval_seconds)
