"""Webhook endpoints' signing secrets at rest: sealed with the token cipher
(TOKEN_ENCRYPTION_KEY, app/services/tokens/cipher.py), opened only to sign an attempt."""

import logging
from datetime import datetime

from app.services.tokens.cipher import Cipher, InvalidToken

logger = logging.getLogger(__name__)

UNREADABLE = (
    "the endpoint's signing secret cannot be opened (TOKEN_ENCRYPTION_KEY, or the secret its "
    "key derives from, changed): rotate the endpoint's secret"
)


class UnreadableSecretError(Exception):
    """The current secret was sealed with a key the cipher no longer holds."""


def signing_secrets(
    cipher: Cipher,
    *,
    endpoint_id: str,
    secret: str,
    previous: str | None,
    previous_until: datetime | None,
    now: datetime,
) -> list[str]:
    """The secrets in clear that sign an attempt now: the current one, and the previous one
    during a rotation's overlap (left out if it cannot be opened)."""
    try:
        signing = [cipher.open(secret)]
    except InvalidToken:
        logger.warning("webhook endpoint %s: %s", endpoint_id, UNREADABLE)
        raise UnreadableSecretError(UNREADABLE) from None
    if previous and previous_until is not None and previous_until > now:
        try:
            signing.append(cipher.open(previous))
        except InvalidToken:
            logger.warning(
                "webhook endpoint %s: its previous signing secret cannot be opened; "
                "signing with the current one only",
                endpoint_id,
            )
    return signing
