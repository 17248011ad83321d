"""Routing: which business account (IG_ID) a request speaks for, and the environment's account.

A customer's IGSID is specific to one business account, so the stored conversation tells
which account serves a customer: its token sends, reacts and fetches the profile. A customer
with no conversation yet is served by the only account there is; with several, the service
cannot tell, and says so.

The environment's account (INSTAGRAM_USER_TOKEN) is adopted as an ordinary row at start.
Without INSTAGRAM_ACCOUNT_ID its IG_ID comes from `/me`, asked by a thread of its own started
with the app (retried with backoff until it answers): no request thread ever waits on a lock
behind a slow Meta.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.config import Settings
from app.errors import ConflictError, NotFoundError, ServiceUnavailableError
from app.repositories import accounts, conversations

logger = logging.getLogger(__name__)

# How long a request that needs the IG_ID waits for `/me` before it is answered 503.
RESOLVE_WAIT_SECONDS = 2.0
RETRY_SECONDS = (1.0, 5.0, 30.0, 120.0)


class AccountUnresolvedError(ServiceUnavailableError):
    code = "account_unresolved"


class AccountNotFoundError(NotFoundError):
    code = "account_not_found"


class AccountRemovedError(ConflictError):
    code = "account_removed"


class EnvironmentAccount:
    """The environment's IG_ID: INSTAGRAM_ACCOUNT_ID, else the one `/me` reports for
    INSTAGRAM_USER_TOKEN (then handed to `on_resolved`, which adopts the account).

    A request that needs the id before it is known waits a moment on that answer, then gets
    503 `account_unresolved` with Retry-After.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        instagram: InstagramClient,
        on_resolved: Callable[[str], None] = lambda _: None,
        wait_seconds: float = RESOLVE_WAIT_SECONDS,
    ) -> None:
        self._configured = settings.account_id
        self._has_token = settings.instagram_user_token is not None
        self._instagram = instagram
        self._on_resolved = on_resolved
        self._wait_seconds = wait_seconds
        self._discovered: str | None = None
        self._resolved = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()  # guards only the thread's creation, never a call

    def start(self) -> None:
        """Resolve the id in the background (nothing to do when it is configured, or when
        there is no token to ask with)."""
        if self._configured or not self._has_token:
            return
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._resolve, name="account-resolver", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def id(self) -> str | None:
        """The environment's IG_ID; None when no account is configured in the environment."""
        if self._configured:
            return self._configured
        if not self._has_token:
            return None
        if self._discovered is None:
            self.start()
            self._resolved.wait(self._wait_seconds)
        if self._discovered is None:
            raise AccountUnresolvedError(
                "The business account is not known yet: INSTAGRAM_ACCOUNT_ID is not set and the "
                "Instagram API has not answered /me. Retry shortly, or set INSTAGRAM_ACCOUNT_ID.",
                headers={"Retry-After": "5"},
            )
        return self._discovered

    def _resolve(self) -> None:
        attempt = 0
        while not self._stopped.is_set():
            try:
                discovered = str(self._instagram.get_me()["user_id"])
                self._on_resolved(discovered)
            except (InstagramError, KeyError) as exc:
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                reason = exc.code if isinstance(exc, InstagramError) else "no user_id"
                logger.warning("the business account's IG_ID is not known yet (%s)", reason)
                attempt += 1
                self._stopped.wait(delay)
                continue
            except Exception as exc:  # the database, most likely: try again, say why
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                logger.warning("the business account is not stored yet (%s)", type(exc).__name__)
                attempt += 1
                self._stopped.wait(delay)
                continue
            self._discovered = discovered
            logger.info("the business account is %s (from /me)", discovered)
            self._resolved.set()
            return


@dataclass(frozen=True, slots=True)
class CustomerRoute:
    """Who serves a customer: the account, and the customer's conversation with it as stored
    (its columns, `id` and `last_inbound_at` among them; None when there is none yet)."""

    account_id: str
    conversation: Row[Any] | None


def route_customer(
    session: Session, *, customer_id: str, environment: EnvironmentAccount
) -> CustomerRoute:
    """The account serving this customer: their conversation's, else the only one served.

    404 `conversation_not_found` when several accounts could; 409 `account_removed` when the
    account is no longer served; 503 `account_unresolved` while the environment's IG_ID is
    being asked from `/me` and no account is stored yet.
    """
    known = conversations.latest_for_customer(session, customer_id=customer_id)
    if known is not None:
        account_id = str(known.account_id)
        if known.account_status == "removed":
            raise _removed(account_id)
        return CustomerRoute(account_id=account_id, conversation=known)
    served = accounts.listed(session)
    if len(served) == 1:
        return CustomerRoute(account_id=served[0].id, conversation=None)
    if not served:
        session.commit()  # no transaction (nor SQLite's lock) held while `/me` is awaited
        from_environment = environment.id()
        if from_environment is not None:
            require_served(session, account_id=from_environment)
            return CustomerRoute(account_id=from_environment, conversation=None)
    raise NotFoundError(
        f"No conversation with customer {customer_id}: "
        + (
            "with several business accounts the service cannot tell which one to write from "
            "(a customer's id is specific to one account; the customer writes first)."
            if served
            else "no business account is configured (POST /api/v1/accounts)."
        ),
        code="conversation_not_found",
    )


def account_for_customer(
    session: Session, *, customer_id: str, environment: EnvironmentAccount
) -> str:
    """The account serving this customer (see route_customer)."""
    return route_customer(session, customer_id=customer_id, environment=environment).account_id


def served_account_ids(session_factory: Callable[[], Session]) -> list[str]:
    """The IG_IDs of every account the service serves (not removed), oldest first."""
    with session_factory() as session:
        served = [row.id for row in accounts.listed(session)]
        session.commit()
    return served


def require_served(session: Session, *, account_id: str) -> None:
    """409 `account_removed` when the account is no longer served."""
    account = accounts.get(session, account_id)
    if account is not None and account.status == "removed":
        raise _removed(account_id)


def _removed(account_id: str) -> AccountRemovedError:
    return AccountRemovedError(
        f"The business account {account_id} was removed: the service no longer sends, "
        "reads profiles or refreshes tokens for it (add it again with a new token)."
    )
