"""Sealing secrets at rest (access tokens, webhook endpoints' signing secrets; anything else
worth keeping unreadable in a dump).

With TOKEN_ENCRYPTION_KEY set, its Fernet keys seal: the first encrypts, every one decrypts
(MultiFernet), so a key rotates without downtime — put the new key first, keep the old one
after it until every sealed value has been written again. Unset, the key derives from a secret
the service already holds (INSTAGRAM_APP_SECRET, else INSTAGRAM_USER_TOKEN, as before this
setting existed): anyone who reads the environment and the database reads the tokens, and
changing that secret makes the stored tokens unreadable (each account must be added again).

Values sealed by any of those keys stay readable: a key derived from the app secret or the
configured token is always among the decrypting keys, so setting TOKEN_ENCRYPTION_KEY later
loses nothing.
"""

import base64
import hashlib
import logging
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.config import Settings

logger = logging.getLogger(__name__)

UNSET_COST = (
    "TOKEN_ENCRYPTION_KEY is not set: stored access tokens and webhook endpoint secrets are "
    "sealed with a key derived from INSTAGRAM_APP_SECRET (else INSTAGRAM_USER_TOKEN), so "
    "whoever reads the environment and the database reads every account's token and every "
    "endpoint's signing secret, and changing that secret makes them unreadable (accounts must "
    "be added again, endpoint secrets rotated); set TOKEN_ENCRYPTION_KEY to a Fernet key "
    "(`fab token-key` prints one)"
)

__all__ = ["UNSET_COST", "Cipher", "InvalidToken", "cipher_for", "derived_key", "new_key"]


def derived_key(secret: str) -> bytes:
    """The Fernet key derived from a secret (the scheme used before TOKEN_ENCRYPTION_KEY)."""
    digest = hashlib.sha256(b"insta-service token store\0" + secret.encode())
    return base64.urlsafe_b64encode(digest.digest())


def new_key() -> str:
    """A fresh Fernet key for TOKEN_ENCRYPTION_KEY."""
    return Fernet.generate_key().decode()


class Cipher:
    """Seals and opens strings with an ordered list of Fernet keys (the first seals)."""

    def __init__(self, keys: list[bytes], *, dedicated: bool) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        # False when no TOKEN_ENCRYPTION_KEY is configured (the fallback key seals).
        self.dedicated = dedicated

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open(self, sealed: str) -> str:
        """The value in clear; `InvalidToken` when none of the keys sealed it."""
        return self._fernet.decrypt(sealed.encode()).decode()

    def reseal(self, sealed: str) -> str:
        """The same value sealed with the first key (rotation)."""
        return self._fernet.rotate(sealed.encode()).decode()


def _keys(settings: Settings) -> tuple[list[bytes], bool]:
    dedicated = [
        key.strip().encode()
        for key in (
            settings.token_encryption_key.get_secret_value()
            if settings.token_encryption_key
            else ""
        ).split(",")
        if key.strip()
    ]
    fallback = [
        derived_key(secret.get_secret_value())
        for secret in (settings.instagram_app_secret, settings.instagram_user_token)
        if secret is not None
    ]
    if not dedicated and not fallback:
        fallback = [derived_key("")]  # nothing to derive from: obfuscation only (UNSET_COST)
    return dedicated + fallback, bool(dedicated)


@lru_cache(maxsize=8)
def _cached(keys: tuple[bytes, ...], dedicated: bool) -> Cipher:
    return Cipher(list(keys), dedicated=dedicated)


def cipher_for(settings: Settings) -> Cipher:
    """The cipher these settings configure (Settings has checked the keys' shape)."""
    keys, dedicated = _keys(settings)
    return _cached(tuple(keys), dedicated)
