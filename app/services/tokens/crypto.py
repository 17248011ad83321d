"""Stored tokens are encrypted with a key derived from the configured token, and keyed by its
fingerprint: the database alone does not reveal the tokens it holds."""

import base64
import hashlib

from cryptography.fernet import Fernet


def fingerprint(token: str) -> str:
    """The sha256 of a token: which configured token a stored one descends from."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenCipher:
    """Encrypts the tokens descending from one configured token (Fernet)."""

    def __init__(self, configured_token: str) -> None:
        # The key derives from the configured token (not from its fingerprint, which is
        # stored).
        digest = hashlib.sha256(b"insta-service token store\0" + configured_token.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(digest.digest()))

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, stored: str) -> str:
        """The token in clear; `cryptography.fernet.InvalidToken` if another key encrypted it."""
        return self._fernet.decrypt(stored.encode()).decode()
