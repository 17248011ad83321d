"""Webhook deliveries the way Meta sends them: payload builders and a signed POST.

Shapes follow the shared `instagram/webhook-examples/` (graph-api.md §2-§3). Plain
functions, so the demo and the service's tests can build and push events themselves.
"""

import json
from dataclasses import dataclass
from typing import Any

import requests

from app.sandbox.clock import now_ms
from app.security import sign_body


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one delivery; `error` is set when the service could not be reached."""

    status_code: int | None = None
    body: str | None = None
    error: str | None = None


def _message_item(
    *, sender_id: str, recipient_id: str, timestamp_ms: int, message: dict[str, Any]
) -> dict[str, Any]:
    return {
        "sender": {"id": sender_id},
        "recipient": {"id": recipient_id},
        "timestamp": timestamp_ms,
        "message": message,
    }


def message_item(
    *,
    customer_id: str,
    account_id: str,
    mid: str,
    timestamp_ms: int,
    text: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    quick_reply: dict[str, Any] | None = None,
    reply_to: dict[str, Any] | None = None,
    referral: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A messaging item for a message the customer sent to the business (`text.json`)."""
    message: dict[str, Any] = {"mid": mid}
    optional = {
        "text": text,
        "attachments": attachments,
        "quick_reply": quick_reply,
        "reply_to": reply_to,
        "referral": referral,
    }
    # Meta leaves absent keys out rather than sending nulls.
    message.update({key: value for key, value in optional.items() if value is not None})
    return _message_item(
        sender_id=customer_id, recipient_id=account_id, timestamp_ms=timestamp_ms, message=message
    )


def echo_item(
    *,
    account_id: str,
    customer_id: str,
    mid: str,
    timestamp_ms: int,
    text: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A messaging item echoing a message the business sent (`echo_text.json`)."""
    message: dict[str, Any] = {"mid": mid}
    if text is not None:
        message["text"] = text
    if attachments is not None:
        message["attachments"] = attachments
    message["is_echo"] = True
    # On an echo the roles flip: the business is the sender.
    return _message_item(
        sender_id=account_id, recipient_id=customer_id, timestamp_ms=timestamp_ms, message=message
    )


def delivery(
    *, account_id: str, items: list[dict[str, Any]], time_ms: int | None = None
) -> dict[str, Any]:
    """The envelope of one POST: a single entry for the account carrying `items`."""
    return {
        "object": "instagram",
        "entry": [
            {
                "time": time_ms if time_ms is not None else now_ms(),
                "id": account_id,
                "messaging": items,
            }
        ],
    }


def encode(payload: Any) -> bytes:
    """Serialise like Meta: compact, non-ASCII escaped as \\uXXXX (the signed bytes)."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()


def deliver(
    *,
    url: str,
    payload: Any,
    secret: str | None,
    session: requests.Session | None = None,
    timeout: float = 10,
) -> DeliveryResult:
    """POST `payload` signed with `secret` (None: unsigned); connection errors are returned."""
    body = encode(payload)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign_body(secret=secret, body=body)
    post = session.post if session is not None else requests.post
    try:
        response = post(url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        return DeliveryResult(error=f"{type(error).__name__}: {error}")
    return DeliveryResult(status_code=response.status_code, body=response.text)
