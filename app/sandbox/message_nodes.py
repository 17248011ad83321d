"""Messages as the Graph API shows them (the Conversations API and `GET /{mid}`), and how
the sandbox records them."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from app.sandbox.state import SandboxState
from app.sandbox.threads import CDN_PATH, FILES, NODE_URL_FIELD, ThreadMessage

MESSAGE_DEFAULT_FIELDS = ("id", "created_time")


def graph_time(ms: int) -> str:
    """Meta's time format in the Conversations API: `2025-04-29T10:50:12+0000`."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def record_message(
    state: SandboxState,
    *,
    customer_id: str,
    mid: str,
    created_ms: int,
    outbound: bool,
    text: str | None,
    attachments: list[dict[str, Any]] | None,
) -> None:
    """Remember a message for the Conversations API (with the files its URLs point at)."""
    account_id = state.config.account_id
    state.threads.record(
        customer_id=customer_id,
        message=ThreadMessage(
            mid=mid,
            created_ms=created_ms,
            from_id=account_id if outbound else customer_id,
            to_id=customer_id if outbound else account_id,
            text=text,
            attachments=attachments,
            asset_ids=[_asset_id(attachment) for attachment in attachments or []],
        ),
    )


def _asset_id(attachment: dict[str, Any]) -> str | None:
    payload = attachment.get("payload")
    url = payload.get("url") if isinstance(payload, dict) else None
    if not isinstance(url, str) or urlsplit(url).path != CDN_PATH:
        return None
    found = parse_qs(urlsplit(url).query).get("asset_id")
    return found[0] if found else None


def message_node(
    state: SandboxState,
    message: ThreadMessage,
    *,
    fields: list[str],
    with_content: bool,
    base_url: str,
) -> dict[str, Any]:
    """A Graph message node: the requested fields (content only when `with_content`)."""
    node: dict[str, Any] = {"id": message.mid, "created_time": graph_time(message.created_ms)}
    if with_content:
        node |= {
            "from": participant(state, message.from_id),
            "to": {"data": [participant(state, message.to_id)]},
            "message": message.text or "",
        }
        if message.attachments:
            node["attachments"] = {"data": _attachments(state, message, base_url=base_url)}
    return {field: node[field] for field in fields if field in node}


def _attachments(
    state: SandboxState, message: ThreadMessage, *, base_url: str
) -> list[dict[str, Any]]:
    """The message's attachments as the Graph API shows them, each with a fresh URL."""
    shown = []
    for attachment, asset_id in zip(message.attachments or [], message.asset_ids, strict=True):
        kind = str(attachment.get("type"))
        url = state.threads.fresh_url(asset_id, base_url=base_url) if asset_id else None
        if url is None:
            shown.append({"type": kind, "payload": attachment.get("payload")})
            continue
        mime_type = FILES.get(kind, (b"", "image/jpeg"))[1]
        where = NODE_URL_FIELD.get(kind, "image_data")
        item: dict[str, Any] = {"id": asset_id, "mime_type": mime_type}
        item[where] = url if where == "file_url" else {"url": url, "preview_url": url}
        shown.append(item)
    return shown


def participant(state: SandboxState, user_id: str) -> dict[str, str]:
    if user_id == state.config.account_id:
        return {"username": state.config.account_username, "id": user_id}
    customer = state.get_customer(user_id)
    return {"username": customer.username if customer else "", "id": user_id}
