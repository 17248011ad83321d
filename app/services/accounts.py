"""Which business account (IG_ID) this service speaks for."""

import threading

from app.clients.instagram import InstagramClient
from app.config import Settings


class BusinessAccount:
    """The configured IG_ID, else the one `/me` reports for the token (asked once per process)."""

    def __init__(self, *, settings: Settings, instagram: InstagramClient) -> None:
        self._configured = settings.account_id
        self._instagram = instagram
        self._discovered: str | None = None
        self._lock = threading.Lock()

    def id(self) -> str:
        if self._configured:
            return self._configured
        with self._lock:
            if self._discovered is None:
                self._discovered = str(self._instagram.get_me()["user_id"])
            return self._discovered
