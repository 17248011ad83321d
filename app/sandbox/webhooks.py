"""Webhook deliveries the way Meta sends them: payload builders and a signed POST.

Shapes follow the shared `instagram/webhook-examples/` (graph-api.md §2-§3). Plain
functions, so the demo and the service's tests can build and push events themselves: one
builder per messaging item kind, `account_entry` and `batch` to group items into entries
and entries into one POST, `delivery` for the usual single-entry case.
"""

import json
from dataclasses import dataclass
from typing import Any, Literal

import requests

from app.sandbox.clock import now_ms
from app.security import sign_body

ReactionAction = Literal["react", "unreact"]

# The emoji Meta sends with each reaction name; "other" (any other emoji) gets none here.
REACTION_EMOJI = {
    "love": "\u2764\ufe0f",
    "like": "\U0001f44d",
    "laugh": "\U0001f606",
    "wow": "\U0001f62e",
    "sad": "\U0001f622",
    "angry": "\U0001f621",
}


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one delivery; `error` is set when the service could not be reached."""

    status_code: int | None = None
    body: str | None = None
    error: str | None = None


def _present(**fields: Any) -> dict[str, Any]:
    # Meta leaves absent keys out rather than sending nulls.
    return {key: value for key, value in fields.items() if value is not None}


def _item(
    *, sender_id: str, recipient_id: str, timestamp_ms: int, event: str, content: dict[str, Any]
) -> dict[str, Any]:
    return {
        "sender": {"id": sender_id},
        "recipient": {"id": recipient_id},
        "timestamp": timestamp_ms,
        event: content,
    }


def _customer_item(
    *, customer_id: str, account_id: str, timestamp_ms: int, event: str, content: dict[str, Any]
) -> dict[str, Any]:
    # Everything but an echo comes from the customer: they are the sender.
    return _item(
        sender_id=customer_id,
        recipient_id=account_id,
        timestamp_ms=timestamp_ms,
        event=event,
        content=content,
    )


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
    is_unsupported: bool = False,
) -> dict[str, Any]:
    """A message the customer sent to the business (`text.json`, `unsupported.json`…)."""
    message = {
        "mid": mid,
        **_present(
            text=text,
            attachments=attachments,
            quick_reply=quick_reply,
            reply_to=reply_to,
            referral=referral,
            is_unsupported=True if is_unsupported else None,
        ),
    }
    return _customer_item(
        customer_id=customer_id,
        account_id=account_id,
        timestamp_ms=timestamp_ms,
        event="message",
        content=message,
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
    message = {"mid": mid, **_present(text=text, attachments=attachments), "is_echo": True}
    # On an echo the roles flip: the business is the sender.
    return _item(
        sender_id=account_id,
        recipient_id=customer_id,
        timestamp_ms=timestamp_ms,
        event="message",
        content=message,
    )


def unsend_item(
    *, customer_id: str, account_id: str, mid: str, timestamp_ms: int
) -> dict[str, Any]:
    """The customer unsent their message `mid` (`unsend_is_deleted.json`)."""
    return _customer_item(
        customer_id=customer_id,
        account_id=account_id,
        timestamp_ms=timestamp_ms,
        event="message",
        content={"mid": mid, "is_deleted": True},
    )


def reaction_item(
    *,
    customer_id: str,
    account_id: str,
    mid: str,
    timestamp_ms: int,
    action: ReactionAction = "react",
    reaction: str | None = None,
    emoji: str | None = None,
) -> dict[str, Any]:
    """The customer reacted to `mid` or took the reaction back (`reaction_react.json`).

    A reaction needs its name; the emoji defaults to the one Meta sends for that name.
    An unreaction carries neither.
    """
    content: dict[str, Any] = {"mid": mid, "action": action}
    if action == "react":
        if reaction is None:
            raise ValueError("a reaction needs its name (love, like, …)")
        content["reaction"] = reaction
        content.update(_present(emoji=emoji if emoji is not None else REACTION_EMOJI.get(reaction)))
    return _customer_item(
        customer_id=customer_id,
        account_id=account_id,
        timestamp_ms=timestamp_ms,
        event="reaction",
        content=content,
    )


def edit_item(
    *, customer_id: str, account_id: str, mid: str, timestamp_ms: int, text: str, num_edit: int
) -> dict[str, Any]:
    """The customer edited `mid`: its new full text and the edit count (`message_edit.json`)."""
    return _customer_item(
        customer_id=customer_id,
        account_id=account_id,
        timestamp_ms=timestamp_ms,
        event="message_edit",
        content={"mid": mid, "text": text, "num_edit": num_edit},
    )


def read_item(
    *,
    customer_id: str,
    account_id: str,
    timestamp_ms: int,
    mid: str | None = None,
    watermark: int | None = None,
) -> dict[str, Any]:
    """The customer saw the business's message `mid` (`seen.json`), or all up to `watermark`."""
    if (mid is None) == (watermark is None):
        raise ValueError("a read names either a mid or a watermark")
    return _customer_item(
        customer_id=customer_id,
        account_id=account_id,
        timestamp_ms=timestamp_ms,
        event="read",
        content=_present(mid=mid, watermark=watermark),
    )


def postback_item(
    *,
    customer_id: str,
    account_id: str,
    mid: str,
    timestamp_ms: int,
    title: str,
    payload: str | None,
    referral: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The customer tapped a button: icebreaker, template button, menu (`postback_icebreaker.json`).

    `payload` is None for a postback in standby, where Meta leaves it out.
    """
    return _customer_item(
        customer_id=customer_id,
        account_id=account_id,
        timestamp_ms=timestamp_ms,
        event="postback",
        content={"mid": mid, "title": title, **_present(payload=payload, referral=referral)},
    )


def referral_item(
    *, customer_id: str, account_id: str, timestamp_ms: int, referral: dict[str, Any]
) -> dict[str, Any]:
    """The customer opened an ig.me link into an existing thread (`referral_igme_…json`)."""
    return _customer_item(
        customer_id=customer_id,
        account_id=account_id,
        timestamp_ms=timestamp_ms,
        event="referral",
        content=referral,
    )


def account_entry(
    *,
    account_id: str,
    items: list[dict[str, Any]],
    time_ms: int | None = None,
    standby: bool = False,
) -> dict[str, Any]:
    """One `entry[]` element; `standby` files the items under `standby[]` (`standby.json`)."""
    return {
        "time": time_ms if time_ms is not None else now_ms(),
        "id": account_id,
        "standby" if standby else "messaging": items,
    }


def batch(*, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of one POST carrying several entries (`two_entries_one_delivery.json`)."""
    return {"object": "instagram", "entry": entries}


def delivery(
    *,
    account_id: str,
    items: list[dict[str, Any]],
    time_ms: int | None = None,
    standby: bool = False,
) -> dict[str, Any]:
    """The body of one POST: a single entry for the account carrying `items`."""
    return batch(
        entries=[
            account_entry(account_id=account_id, items=items, time_ms=time_ms, standby=standby)
        ]
    )


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
