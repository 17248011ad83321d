"""The business account's side of the sandbox: its access tokens and its webhook subscription.

Tokens follow the shared reference (`instagram/graph-api.md` §8): the configured token starts
a 60-day life when the sandbox starts; `ig_refresh_token` gives a new 60-day token for one at
least 24 hours old and still valid. Whether Meta invalidates the old token on a refresh is not
documented: here it stays valid until its own expiry. Tests age, expire and revoke tokens
through the control API; a revoked or expired token answers 190 to every Graph call.
"""

import dataclasses
import secrets
import threading
from dataclasses import dataclass
from typing import Literal

from app.sandbox.clock import now_ms
from app.security import secrets_equal

TOKEN_LIFETIME_MS = 60 * 24 * 60 * 60 * 1000
MIN_REFRESH_AGE_MS = 24 * 60 * 60 * 1000
TokenProblem = Literal["unknown", "expired", "revoked"]


class UnknownTokenError(LookupError):
    """No token has this value."""


class TokenTooYoungError(ValueError):
    """Meta refreshes only tokens at least 24 hours old."""


@dataclass
class IssuedToken:
    value: str
    issued_at_ms: int
    expires_at_ms: int
    revoked: bool = False


class BusinessState:
    """Tokens and subscribed webhook fields; thread-safe, readers get copies."""

    def __init__(self, configured_token: str) -> None:
        self._configured_token = configured_token
        self._lock = threading.Lock()
        self._tokens: list[IssuedToken] = []
        self._subscribed_fields: list[str] = []
        self.reset()

    def reset(self) -> None:
        """One token, the configured one, issued now; no subscription."""
        now = now_ms()
        with self._lock:
            self._tokens = [
                IssuedToken(self._configured_token, now, expires_at_ms=now + TOKEN_LIFETIME_MS)
            ]
            self._subscribed_fields = []

    # Tokens

    def _find(self, value: str) -> IssuedToken | None:
        # Callers hold the lock. Every token is compared, in constant time.
        found = None
        for token in self._tokens:
            if secrets_equal(value, token.value):
                found = token
        return found

    def check_token(self, value: str) -> TokenProblem | None:
        """Why Meta would refuse this token (code 190), or None when it is good."""
        with self._lock:
            token = self._find(value)
            if token is None:
                return "unknown"
            if token.revoked:
                return "revoked"
            if token.expires_at_ms <= now_ms():
                return "expired"
            return None

    def refresh(self, value: str) -> IssuedToken:
        """A new 60-day token for a valid one at least a day old (checked by the caller)."""
        with self._lock:
            token = self._find(value)
            if token is None:
                raise UnknownTokenError("no such token")
            now = now_ms()
            if now - token.issued_at_ms < MIN_REFRESH_AGE_MS:
                raise TokenTooYoungError("the token was issued less than 24 hours ago")
            fresh = IssuedToken(
                value=f"IGAAsandbox{secrets.token_hex(24)}",
                issued_at_ms=now,
                expires_at_ms=now + TOKEN_LIFETIME_MS,
            )
            self._tokens.append(fresh)
            return dataclasses.replace(fresh)

    def tokens(self) -> list[IssuedToken]:
        """Every token issued, oldest first."""
        with self._lock:
            return [dataclasses.replace(token) for token in self._tokens]

    def update_tokens(
        self,
        *,
        value: str | None = None,
        age_seconds: float | None = None,
        expires_in_seconds: float | None = None,
        revoked: bool | None = None,
    ) -> list[IssuedToken]:
        """Age, expire or revoke one token (`value`) or all of them; return every token."""
        now = now_ms()
        with self._lock:
            if value is None:
                chosen = self._tokens
            else:
                token = self._find(value)
                if token is None:
                    raise UnknownTokenError("no such token")
                chosen = [token]
            for token in chosen:
                if age_seconds is not None:
                    token.issued_at_ms = now - int(age_seconds * 1000)
                if expires_in_seconds is not None:
                    token.expires_at_ms = now + int(expires_in_seconds * 1000)
                if revoked is not None:
                    token.revoked = revoked
            return [dataclasses.replace(token) for token in self._tokens]

    # Webhook subscription

    def subscribe(self, fields: list[str]) -> None:
        """Subscribe the account to exactly these fields (a POST replaces the list)."""
        with self._lock:
            self._subscribed_fields = list(dict.fromkeys(fields))

    def unsubscribe(self) -> None:
        with self._lock:
            self._subscribed_fields = []

    def subscribed_fields(self) -> list[str]:
        with self._lock:
            return list(self._subscribed_fields)
