"""Standard Webhooks signatures (standardwebhooks.com): `whsec_` secrets and the
`webhook-id`, `webhook-timestamp`, `webhook-signature` headers of a delivery."""

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime
from typing import Any

from app.schemas.v1.events import webhook_body
from app.services.events.outbox import plain

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


def signed_delivery(
    event: dict[str, Any], *, signing_secrets: list[str], now: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers POSTed for an event (an EventRead): `{"type", "timestamp",
    "data"}`, signed by each secret; the `webhook-id` is the event's id."""
    created = event["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created.replace("Z", "+00:00"))
    body = json.dumps(
        plain(webhook_body(event, timestamp=created)), separators=(",", ":"), ensure_ascii=False
    ).encode()
    timestamp = int(time.time() if now is None else now)
    return body, headers(signing_secrets, message_id=event["id"], timestamp=timestamp, body=body)
