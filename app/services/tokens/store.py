"""The token every Graph call uses: the client's `TokenProvider`, read from the database and
cached for TOKEN_CACHE_SECONDS, so a token refreshed by any process is used everywhere."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import InvalidToken
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from app.clients.instagram_errors import GraphErrorDetails
from app.config import Settings
from app.models import InstagramToken, utcnow
from app.repositories import tokens
from app.services.events import outbox
from app.services.tokens.crypto import TokenCipher, fingerprint
from app.services.tokens.status import NOT_CONFIGURED, NOT_STORED, RE_AUTHENTICATE, TokenStatus
from app.services.tokens.status import status_of as status_of_row

logger = logging.getLogger(__name__)

ASSUMED_LIFETIME = timedelta(days=60)


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
        self._cipher = TokenCipher(self.configured) if self.configured else None
        self.session_factory = session_factory
        self.account_id = settings.account_id
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
        reason = error.describe()
        try:
            with self.session_factory() as session:
                now = self.clock()
                self.adopt_configured(session, now=now)
                if tokens.mark_invalid(
                    session, fingerprint=self.fingerprint, reason=reason, now=now
                ):
                    self.announce(session, now=now)
                session.commit()
        except sa_exc.SQLAlchemyError as exc:
            # Any database error (down, or not migrated yet): the log below still says it.
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
                now = self.clock()
                cleared = tokens.clear_invalid(session, fingerprint=self.fingerprint, now=now)
                if cleared:
                    self.announce(session, now=now)
                session.commit()
        except sa_exc.SQLAlchemyError as exc:
            # Any database error (down, or not migrated yet): the next success tries again.
            logger.warning("could not clear the invalid-token mark: %s", type(exc).__name__)
            return
        self._remember(invalid=False)
        if cleared:
            logger.info("Instagram accepted the access token again: the invalid mark is cleared")

    def announce(self, session: Session, *, now: datetime) -> None:
        """An account.updated event (in the session's transaction): the token's new state."""
        row = tokens.get(session, self.fingerprint)
        if row is None:
            return
        state = status_of_row(row, now=now, refresh_window=self.refresh_window).as_dict()
        account = {"id": self.account_id, "token": state}
        outbox.record(
            session,
            [
                outbox.EventDraft(
                    type="account.updated",
                    account_id=self.account_id,
                    conversation=None,
                    payload={"account": account},
                )
            ],
        )

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
        except sa_exc.SQLAlchemyError as exc:
            # Any database error: down, or not migrated yet (the job retries every round).
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
        return self._cipher.encrypt(token)

    def decrypt(self, row: InstagramToken) -> str:
        assert self._cipher is not None
        return self._cipher.decrypt(row.access_token)

    def forget(self) -> None:
        """Drop the cached token: the next call reads the database."""
        with self._lock:
            self._loaded = None

    def status(self) -> TokenStatus:
        """The token's state now, read from the database (errors propagate)."""
        if self.configured is None:
            return NOT_CONFIGURED
        with self.session_factory() as session:
            row = tokens.get(session, self.fingerprint)
            if row is None:
                return NOT_STORED
            return status_of_row(row, now=self.clock(), refresh_window=self.refresh_window)

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
        except (sa_exc.SQLAlchemyError, InvalidToken) as exc:
            # Any database error (down, or not migrated yet), or a row this key cannot read:
            # keep calling with what we had.
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
