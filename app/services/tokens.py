"""The access token's lifecycle: stored, refreshed before it expires, marked when Meta rejects it.

An Instagram user token lives 60 days. The configured INSTAGRAM_USER_TOKEN is stored (keyed by
its sha256, encrypted with a key derived from it) with its expiry — assumed 60 days until a
refresh answer tells the real one. A background job refreshes it with `ig_refresh_token` once
it is a day old and expires within TOKEN_REFRESH_DAYS_BEFORE_EXPIRY days (or its expiry is
only assumed: the first refresh learns the real one), one process at a time. Every process
reads the token in use from the database (cached for TOKEN_CACHE_SECONDS), so a refreshed
token is used everywhere without a restart. A newly configured token starts a row of its own.

When Meta answers code 190 the token is marked invalid: `/ready` and `fab doctor` say so and the
log says what to do. The mark only reports — calls still go out — and the first call Meta
accepts clears it.
"""

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.clients.instagram import GraphErrorDetails, InstagramClient, InstagramError
from app.config import Settings
from app.models import InstagramToken, utcnow
from app.repositories import tokens
from app.services.background import BackgroundWorker

logger = logging.getLogger(__name__)

ASSUMED_LIFETIME = timedelta(days=60)
MIN_REFRESH_AGE = timedelta(hours=24)  # Meta refreshes only tokens at least a day old
REFRESH_LEASE = timedelta(minutes=5)  # far longer than a refresh call takes
DATABASE_ERRORS = (sa_exc.SQLAlchemyError,)
RE_AUTHENTICATE = (
    "generate a new token (App Dashboard → Instagram → API setup with Instagram login → "
    "Generate token), set INSTAGRAM_USER_TOKEN and restart the service; `fab doctor` checks it"
)


def fingerprint(token: str) -> str:
    """The sha256 of a token: which configured token a stored one descends from."""
    return hashlib.sha256(token.encode()).hexdigest()


def _cipher(configured_token: str) -> Fernet:
    # The key derives from the configured token (not from its fingerprint, which is stored):
    # the database alone does not reveal the tokens it holds.
    digest = hashlib.sha256(b"insta-service token store\0" + configured_token.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def describe_graph_error(error: GraphErrorDetails) -> str:
    code = f"{error.code}/{error.subcode}" if error.subcode else str(error.code)
    return f"code {code}: {error.message} (fbtrace_id {error.fbtrace_id})"


@dataclass(frozen=True)
class TokenStatus:
    """What `/ready`, `/metrics` and `fab doctor` say about the token."""

    # not_configured | unknown | valid | expiring | expired | invalid
    state: str
    detail: str
    expires_at: datetime | None = None
    days_left: float | None = None
    expiry_assumed: bool | None = None
    refreshed_at: datetime | None = None
    refresh_error: str | None = None
    invalid_since: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        report = {key: value for key, value in asdict(self).items() if value is not None}
        for key in ("expires_at", "refreshed_at", "invalid_since"):
            if key in report:
                report[key] = report[key].isoformat()
        if self.days_left is not None:
            report["days_left"] = int(self.days_left)
        return report


@dataclass(frozen=True)
class _Loaded:
    token: str
    invalid: bool
    at: float  # time.monotonic() of the read


class TokenStore:
    """The token every Graph call uses (the client's `TokenProvider`), and its state."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[Session],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        configured = settings.instagram_user_token
        self.configured = configured.get_secret_value() if configured else None
        # Empty when no token is configured (every use checks `configured` first).
        self.fingerprint = fingerprint(self.configured) if self.configured else ""
        self._cipher = _cipher(self.configured) if self.configured else None
        self.session_factory = session_factory
        self.clock = clock
        self.refresh_window = timedelta(days=settings.token_refresh_days_before_expiry)
        self._cache_seconds = settings.token_cache_seconds
        self._loaded: _Loaded | None = None
        self._database_failing = False
        self._lock = threading.Lock()

    # The client's TokenProvider

    def current(self) -> str | None:
        """The stored (possibly refreshed) token, else the configured one."""
        if self.configured is None:
            return None
        return self._load().token

    def rejected(self, error: GraphErrorDetails) -> None:
        """Meta answered 190: mark the token as needing re-authentication (once)."""
        if self.configured is None or self._load().invalid:
            return
        reason = describe_graph_error(error)
        try:
            with self.session_factory() as session:
                now = self.clock()
                self.adopt_configured(session, now=now)
                tokens.mark_invalid(session, fingerprint=self.fingerprint, reason=reason, now=now)
                session.commit()
        except DATABASE_ERRORS as exc:
            logger.warning("could not store the invalid-token mark: %s", type(exc).__name__)
        self._remember(invalid=True)
        logger.error(
            "Instagram rejected the access token (%s): re-authentication needed — %s. Graph "
            "calls still go out; the first one Instagram accepts clears this mark.",
            reason,
            RE_AUTHENTICATE,
        )

    def accepted(self) -> None:
        """A call succeeded: clear the invalid mark if there is one."""
        if self.configured is None or not self._load().invalid:
            return
        try:
            with self.session_factory() as session:
                cleared = tokens.clear_invalid(
                    session, fingerprint=self.fingerprint, now=self.clock()
                )
                session.commit()
        except DATABASE_ERRORS as exc:
            logger.warning("could not clear the invalid-token mark: %s", type(exc).__name__)
            return
        self._remember(invalid=False)
        if cleared:
            logger.info("Instagram accepted the access token again: the invalid mark is cleared")

    # Lifecycle

    def adopt(self) -> None:
        """Store the configured token if it is new (expiry assumed until the first refresh)."""
        if self.configured is None:
            return
        with self.session_factory() as session:
            self.adopt_configured(session, now=self.clock())
            session.commit()
        self.forget()

    def adopt_at_start(self) -> None:
        """`adopt` when the service starts; a database not ready yet leaves it to the job."""
        try:
            self.adopt()
        except DATABASE_ERRORS as exc:
            logger.warning(
                "the access token is not stored yet (%s): the refresh job will store it",
                type(exc).__name__,
            )

    def adopt_configured(self, session: Session, *, now: datetime) -> None:
        """`adopt` inside the caller's transaction."""
        assert self.configured is not None
        tokens.adopt(
            session,
            fingerprint=self.fingerprint,
            access_token=self.encrypt(self.configured),
            now=now,
            expires_at=now + ASSUMED_LIFETIME,
        )

    def encrypt(self, token: str) -> str:
        assert self._cipher is not None
        return self._cipher.encrypt(token.encode()).decode()

    def decrypt(self, row: InstagramToken) -> str:
        assert self._cipher is not None
        return self._cipher.decrypt(row.access_token.encode()).decode()

    def forget(self) -> None:
        """Drop the cached token: the next call reads the database."""
        with self._lock:
            self._loaded = None

    def status(self) -> TokenStatus:
        """The token's state now, read from the database (errors propagate)."""
        if self.configured is None:
            return TokenStatus(
                state="not_configured",
                detail="INSTAGRAM_USER_TOKEN is not set: profiles and sending are unavailable",
            )
        with self.session_factory() as session:
            row = tokens.get(session, self.fingerprint)
            if row is None:
                return TokenStatus(
                    state="unknown",
                    detail="not stored yet (the refresh job stores it when it runs)",
                )
            return self._status_of(row)

    def _status_of(self, row: InstagramToken) -> TokenStatus:
        now = self.clock()
        days_left = (row.expires_at - now).total_seconds() / 86400
        when = f"{row.expires_at:%Y-%m-%d %H:%M} UTC"
        known = {
            "expires_at": row.expires_at,
            "days_left": days_left,
            "expiry_assumed": row.expiry_assumed,
            "refreshed_at": row.refreshed_at,
            "refresh_error": row.refresh_error,
            "invalid_since": row.invalid_since,
        }
        if row.invalid_since is not None:
            detail = (
                f"Instagram rejected it ({row.invalid_reason}) since "
                f"{row.invalid_since:%Y-%m-%d %H:%M} UTC: {RE_AUTHENTICATE}"
            )
            return TokenStatus(state="invalid", detail=detail, **known)
        if days_left <= 0:
            return TokenStatus(
                state="expired", detail=f"expired {when}: {RE_AUTHENTICATE}", **known
            )
        guess = " (assumed: 60 days after it was first seen)" if row.expiry_assumed else ""
        in_days = f"expires in {int(days_left)} days, {when}{guess}"
        if days_left <= self.refresh_window.days:
            failure = f"; the last refresh failed: {row.refresh_error}" if row.refresh_error else ""
            detail = f"{in_days}; the refresh job renews it{failure}"
            return TokenStatus(state="expiring", detail=detail, **known)
        return TokenStatus(state="valid", detail=f"valid, {in_days}", **known)

    def _load(self) -> _Loaded:
        assert self.configured is not None
        with self._lock:
            loaded = self._loaded
        if loaded is not None and time.monotonic() - loaded.at < self._cache_seconds:
            return loaded
        try:
            with self.session_factory() as session:
                row = tokens.get(session, self.fingerprint)
                token = self.decrypt(row) if row else self.configured
                invalid = bool(row and row.invalid_since)
            loaded = _Loaded(token=token, invalid=invalid, at=time.monotonic())
            self._database_failing = False
        except (*DATABASE_ERRORS, InvalidToken) as exc:
            # The database is down (or not migrated): keep calling with what we had.
            if not self._database_failing:
                logger.warning(
                    "reading the stored access token failed (%s): using the last one known",
                    type(exc).__name__,
                )
            self._database_failing = True
            previous = loaded or _Loaded(token=self.configured, invalid=False, at=0)
            loaded = _Loaded(token=previous.token, invalid=previous.invalid, at=time.monotonic())
        with self._lock:
            self._loaded = loaded
        return loaded

    def _remember(self, *, invalid: bool) -> None:
        with self._lock:
            if self._loaded is not None:
                self._loaded = _Loaded(
                    token=self._loaded.token, invalid=invalid, at=self._loaded.at
                )


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
        store = self.store
        if store.configured is None:
            return False
        now = self.clock()
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
        if not claimed:
            return False
        store.forget()  # call with the token just claimed
        try:
            answer = self.instagram.refresh_access_token()
        except InstagramError as exc:
            self._failed(exc, now=now)
            return False
        expires_in = answer.get("expires_in")
        known = isinstance(expires_in, int | float) and expires_in > 0
        expires_at = now + (timedelta(seconds=expires_in) if known else ASSUMED_LIFETIME)
        with store.session_factory() as session:
            tokens.save_refreshed(
                session,
                fingerprint=store.fingerprint,
                access_token=store.encrypt(answer["access_token"]),
                now=now,
                expires_at=expires_at,
                expiry_assumed=not known,
            )
            session.commit()
        store.forget()
        metrics.TOKEN_REFRESHES.labels(outcome="ok").inc()
        logger.info("access token refreshed; it expires %s", f"{expires_at:%Y-%m-%d %H:%M} UTC")
        return True

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
