"""Which business account (IG_ID) this service speaks for."""

import logging
import threading

from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.config import Settings
from app.errors import ServiceUnavailableError

logger = logging.getLogger(__name__)

# How long a request that needs the IG_ID waits for `/me` before it is answered 503.
RESOLVE_WAIT_SECONDS = 2.0
RETRY_SECONDS = (1.0, 5.0, 30.0, 120.0)


class AccountUnresolvedError(ServiceUnavailableError):
    code = "account_unresolved"


class BusinessAccount:
    """The configured IG_ID, else the one `/me` reports for the token.

    Without INSTAGRAM_ACCOUNT_ID, `/me` is asked once, by a thread of its own started with the
    app (and retried with backoff until it answers): no request thread ever waits on a lock
    behind a slow Meta. A request that needs the id before it is known waits a moment on that
    answer, then gets 503 `account_unresolved` with Retry-After.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        instagram: InstagramClient,
        wait_seconds: float = RESOLVE_WAIT_SECONDS,
    ) -> None:
        self._configured = settings.account_id
        self._instagram = instagram
        self._wait_seconds = wait_seconds
        self._discovered: str | None = None
        self._resolved = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()  # guards only the thread's creation, never a call

    def start(self) -> None:
        """Resolve the id in the background (nothing to do when it is configured)."""
        if self._configured:
            return
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._resolve, name="account-resolver", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def id(self) -> str:
        if self._configured:
            return self._configured
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
                self._discovered = str(self._instagram.get_me()["user_id"])
            except (InstagramError, KeyError) as exc:
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                reason = exc.code if isinstance(exc, InstagramError) else "no user_id"
                logger.warning("the business account's IG_ID is not known yet (%s)", reason)
                attempt += 1
                self._stopped.wait(delay)
                continue
            logger.info("the business account is %s (from /me)", self._discovered)
            self._resolved.set()
            return
