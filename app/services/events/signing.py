"""Standard Webhooks signatures (standardwebhooks.com): `whsec_` secrets and the
`webhook-id`, `webhook-timestamp`, `webhook-signature` headers of a delivery."""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)
SECRET_BYTES = 24


def new_secret() -> str:
    """`whsec_` and base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    signing_secrets: list[str], *, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one attempt; one signature per valid secret, space-separated (during
    a rotation both the new and the previous secret sign)."""
    signatures = " ".join(
        signature(secret, message_id=message_id, timestamp=timestamp, body=body)
        for secret in signing_secrets
    )
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
