"""The refresh job: renews each account's token with `ig_refresh_token` before it expires, one
process at a time per account (a lease on the account's row)."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from app import metrics
from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.config import Settings
from app.models import utcnow
from app.repositories import accounts
from app.services.account_changes import account_updated
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
        """Store the environment's account if new; refresh every token that is due, each
        account on its own (one failing never holds up another). True when one was."""
        now = self.clock()
        claimed = self._claim(now=now)
        refreshed = 0
        for account_id in claimed:
            self.store.forget(account_id)  # call with the token just claimed
            try:
                answer = self.instagram.for_account(account_id).refresh_access_token()
            except InstagramError as exc:
                self._failed(account_id, exc, now=now)
                continue
            self._refreshed(account_id, answer, now=now)
            refreshed += 1
        return refreshed > 0

    def _claim(self, *, now: datetime) -> list[str]:
        """Adopt the environment's account; claim the tokens due for a refresh (leases)."""
        store = self.store
        with store.session_factory() as session:
            if store.configured_account_id is not None:
                store.adopt_configured(session, account_id=store.configured_account_id, now=now)
            claimed = accounts.claim_refreshes(
                session,
                now=now,
                issued_before=now - MIN_REFRESH_AGE,
                expires_before=now + store.refresh_window,
                lease_until=now + REFRESH_LEASE,
            )
            session.commit()
        return claimed

    def _refreshed(self, account_id: str, answer: dict[str, Any], *, now: datetime) -> None:
        """Store Meta's new token and its expiry (assumed when the answer does not say)."""
        expires_in = answer.get("expires_in")
        seconds = expires_in if isinstance(expires_in, int | float) and expires_in > 0 else None
        expires_at = now + (ASSUMED_LIFETIME if seconds is None else timedelta(seconds=seconds))
        store = self.store
        with store.session_factory() as session:
            accounts.save_refreshed(
                session,
                account_id=account_id,
                access_token=store.cipher.seal(answer["access_token"]),
                now=now,
                expires_at=expires_at,
                expiry_assumed=seconds is None,
            )
            account_updated(session, account_id=account_id, change="token_refreshed")
            session.commit()
        store.forget(account_id)
        metrics.TOKEN_REFRESHES.labels(account=account_id, outcome="ok").inc()
        logger.info(
            "access token of account %s refreshed; it expires %s",
            account_id,
            f"{expires_at:%Y-%m-%d %H:%M} UTC",
        )

    def _failed(self, account_id: str, error: InstagramError, *, now: datetime) -> None:
        retry_at = now + self.retry_delay
        with self.store.session_factory() as session:
            accounts.save_refresh_failure(
                session, account_id=account_id, error=error.message, retry_at=retry_at, now=now
            )
            session.commit()
        metrics.TOKEN_REFRESHES.labels(account=account_id, outcome="failed").inc()
        logger.error(
            "access token refresh of account %s failed (%s: %s); next try after %s",
            account_id,
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
