"""Every account's access token, as the Graph calls use it: read from `accounts`, opened with
the cipher and cached per account for TOKEN_CACHE_SECONDS, so a token refreshed or replaced
by any process is used everywhere without a restart.

The environment's account (INSTAGRAM_USER_TOKEN, with INSTAGRAM_ACCOUNT_ID or the IG_ID `/me`
reports for it) is adopted as an ordinary row; a newly configured token replaces the stored
one, a stored one that descends from it (refreshed since) is kept.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from app.clients.instagram_errors import GraphErrorDetails
from app.config import Settings
from app.models import Account, utcnow
from app.repositories import accounts
from app.services.account_changes import account_updated
from app.services.token_status import NOT_STORED, RE_AUTHENTICATE, TokenStatus
from app.services.token_status import status_of as status_of_row
from app.services.tokens.cipher import Cipher, InvalidToken, cipher_for

logger = logging.getLogger(__name__)

ASSUMED_LIFETIME = timedelta(days=60)


def fingerprint(token: str) -> str:
    """The sha256 of a token: which configured token a stored one descends from."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class _Loaded:
    token: str | None  # None: the account is not served (unknown, removed) or has no token
    needs_reauth: bool
    at: float  # time.monotonic() of the read


class AccountToken:
    """One account's token as the client's `TokenProvider`."""

    def __init__(self, store: "TokenStore", account_id: str) -> None:
        self.store = store
        self.account_id = account_id

    def current(self) -> str | None:
        return self.store.current(self.account_id)

    def rejected(self, error: GraphErrorDetails) -> None:
        self.store.rejected(self.account_id, error)

    def accepted(self) -> None:
        self.store.accepted(self.account_id)


class TokenStore:
    """The tokens every Graph call uses (per account), and their state."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[Session],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        configured = settings.instagram_user_token
        # The environment's token and account (either may be unset).
        self.configured = configured.get_secret_value() if configured else None
        self.configured_account_id = settings.account_id
        self.cipher: Cipher = cipher_for(settings)
        self.session_factory = session_factory
        self.account_id = settings.account_id
        self.clock = clock
        self.refresh_window = timedelta(days=settings.token_refresh_days_before_expiry)
        self._cache_seconds = settings.token_cache_seconds
        self._loaded: dict[str, _Loaded] = {}
        self._failing = False
        self._lock = threading.Lock()

    def provider(self, account_id: str) -> AccountToken:
        return AccountToken(self, account_id)

    # What the client's TokenProvider asks

    def current(self, account_id: str) -> str | None:
        """The account's stored (possibly refreshed) token; None when it is not served."""
        return self._load(account_id).token

    def rejected(self, account_id: str, error: GraphErrorDetails) -> None:
        """Meta answered 190: this account (only) needs re-authentication."""
        if self._load(account_id).needs_reauth:
            return
        reason = error.describe()
        try:
            with self.session_factory() as session:
                now = self.clock()
                if accounts.mark_needs_reauth(
                    session, account_id=account_id, reason=reason, now=now
                ):
                    account_updated(session, account_id=account_id, change="needs_reauth")
                session.commit()
        except sa_exc.SQLAlchemyError as exc:
            # Any database error (down, or not migrated yet): the log below still says it.
            logger.warning("could not store the needs_reauth mark: %s", type(exc).__name__)
        self._remember(account_id, needs_reauth=True)
        logger.error(
            "Instagram rejected the access token of account %s (%s): re-authentication "
            "needed — %s. Its Graph calls still go out; the first one Instagram accepts "
            "makes it active again.",
            account_id,
            reason,
            RE_AUTHENTICATE,
        )

    def accepted(self, account_id: str) -> None:
        """A call succeeded: an account marked `needs_reauth` is active again."""
        if not self._load(account_id).needs_reauth:
            return
        try:
            with self.session_factory() as session:
                cleared = accounts.clear_needs_reauth(
                    session, account_id=account_id, now=self.clock()
                )
                if cleared:
                    account_updated(session, account_id=account_id, change="reauthenticated")
                session.commit()
        except sa_exc.SQLAlchemyError as exc:
            # Any database error (down, or not migrated yet): the next success tries again.
            logger.warning("could not clear the needs_reauth mark: %s", type(exc).__name__)
            return
        self._remember(account_id, needs_reauth=False)
        if cleared:
            logger.info("Instagram accepted the token of account %s again: active", account_id)

    # The environment's account

    def adopt(self, account_id: str | None = None) -> None:
        """Store the environment's account (`account_id`: the IG_ID `/me` reported when
        INSTAGRAM_ACCOUNT_ID is unset); nothing to do when neither id is known."""
        account_id = account_id or self.configured_account_id
        if account_id is None:
            return
        with self.session_factory() as session:
            self.adopt_configured(session, account_id=account_id, now=self.clock())
            session.commit()
        self.forget()

    def adopt_at_start(self) -> None:
        """`adopt` when the service starts; a database not ready yet leaves it to the job."""
        try:
            self.adopt()
        except sa_exc.SQLAlchemyError as exc:
            # Any database error: down, or not migrated yet (the job retries every round).
            logger.warning(
                "the environment's account is not stored yet (%s): the refresh job will store it",
                type(exc).__name__,
            )

    def adopt_configured(self, session: Session, *, account_id: str, now: datetime) -> None:
        """`adopt` inside the caller's transaction: a new row, or the configured token put
        in place of a stored one it does not descend from."""
        if self.configured is None:
            values = {"id": account_id, "status": "active", "created_at": now, "updated_at": now}
            accounts.insert_new(session, values=values)
            return
        token = self.token_values(self.configured, now=now)
        sha = fingerprint(self.configured)
        if accounts.insert_new(
            session,
            values={"id": account_id, "configured_token_sha256": sha, "created_at": now, **token},
        ):
            # Adopted, not added: the deployment has served it since it was configured (no
            # account.updated for what no consumer saw change).
            return
        stored = accounts.get(session, account_id)
        if stored is not None and stored.configured_token_sha256 != sha:
            # A token configured anew (or the first time for an account added by the API):
            # the operator's latest word. A removed account stays removed unless it is new.
            if stored.status == "removed" and stored.configured_token_sha256 is not None:
                return
            accounts.replace_token(
                session, account_id=account_id, values={"configured_token_sha256": sha, **token}
            )
            account_updated(session, account_id=account_id, change="token_replaced")

    def token_values(self, token: str, *, now: datetime) -> dict[str, object]:
        """The columns of a token first seen now (its expiry assumed)."""
        return {
            "access_token": self.cipher.seal(token),
            "issued_at": now,
            "expires_at": now + ASSUMED_LIFETIME,
            "expiry_assumed": True,
            "updated_at": now,
        }

    def forget(self, account_id: str | None = None) -> None:
        """Drop the cached token(s): the next call reads the database."""
        with self._lock:
            if account_id is None:
                self._loaded.clear()
            else:
                self._loaded.pop(account_id, None)

    # State

    def status(self, account_id: str) -> TokenStatus:
        """The account's token state now, read from the database (errors propagate)."""
        with self.session_factory() as session:
            return self.status_of(accounts.get(session, account_id))

    def is_environments(self, row: Account) -> bool:
        """Whether the row is the environment's account (INSTAGRAM_USER_TOKEN's)."""
        if self.configured is None:
            return False
        return row.configured_token_sha256 == fingerprint(self.configured)

    def status_of(self, row: Account | None) -> TokenStatus:
        if row is None or row.access_token is None or row.expires_at is None:
            return NOT_STORED
        return status_of_row(row, now=self.clock(), refresh_window=self.refresh_window)

    def _load(self, account_id: str) -> _Loaded:
        with self._lock:
            loaded = self._loaded.get(account_id)
        if loaded is not None and time.monotonic() - loaded.at < self._cache_seconds:
            return loaded
        try:
            with self.session_factory() as session:
                row = accounts.get(session, account_id)
                sealed = row.access_token if row is not None and row.status != "removed" else None
                token = self.cipher.open(sealed) if sealed else None
                if row is None and account_id == self.configured_account_id:
                    token = self.configured  # the environment's, not stored yet
                needs_reauth = bool(row and row.status == "needs_reauth")
            loaded = _Loaded(token=token, needs_reauth=needs_reauth, at=time.monotonic())
            self._failing = False
        except (sa_exc.SQLAlchemyError, InvalidToken) as exc:
            # Any database error (down, or not migrated yet), or a token none of the keys
            # opens: keep calling with what we had (the environment's token for its account).
            if not self._failing:
                logger.warning(
                    "reading the stored token of account %s failed (%s): using the last one known",
                    account_id,
                    type(exc).__name__,
                )
            self._failing = True
            fallback = self.configured if account_id == self.configured_account_id else None
            previous = loaded or _Loaded(token=fallback, needs_reauth=False, at=0)
            loaded = _Loaded(
                token=previous.token, needs_reauth=previous.needs_reauth, at=time.monotonic()
            )
        with self._lock:
            self._loaded[account_id] = loaded
        return loaded

    def _remember(self, account_id: str, *, needs_reauth: bool) -> None:
        with self._lock:
            loaded = self._loaded.get(account_id)
            if loaded is not None:
                self._loaded[account_id] = _Loaded(
                    token=loaded.token, needs_reauth=needs_reauth, at=loaded.at
                )
