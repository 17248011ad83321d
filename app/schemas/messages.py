"""History as the original `/messages` endpoint shows it (README sample 4), and its JSON."""

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


class SeedMessageRead(BaseModel):
    """One message: who wrote it to whom, and its text (or a placeholder for media)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sender_username": "test_user6023",
                    "recipient_username": "test_appstestapps",
                    "text": "test message webhook",
                }
            ]
        }
    )

    sender_username: str
    recipient_username: str
    text: str


def seed_message_json(
    message: Mapping[Any, Any], *, usernames: Mapping[str, str]
) -> dict[str, str]:
    """A SeedMessageRead: a messages row's columns (`row._mapping`), with the usernames known
    by id (an id without one stands for itself)."""
    sender, recipient = message["sender_id"], message["recipient_id"]
    return {
        "sender_username": usernames.get(sender, sender),
        "recipient_username": usernames.get(recipient, recipient),
        "text": display_text(message),
    }


def display_text(message: Mapping[Any, Any]) -> str:
    """The text, or a short placeholder for what has none (media, unsent, unsupported);
    from a messages row's columns (`row._mapping`)."""
    if message["is_deleted"]:
        return "[deleted]"
    if not content_available(message):
        return "[content unavailable]"
    if message["text"]:
        return str(message["text"])
    attachments = message["attachments"]
    if attachments:
        kinds = ", ".join(
            str(attachment.get("type", "attachment")) if isinstance(attachment, dict) else "?"
            for attachment in attachments
        )
        return f"[{kinds}]"
    if message["is_unsupported"]:
        return "[unsupported message]"
    return "[empty message]"


def content_available(message: Mapping[Any, Any]) -> bool:
    """False for a message Meta lists but keeps no content of (imported by a backfill,
    older than its thread's 20 newest): only its id, time and sides are known."""
    return not (message["is_placeholder"] and message["source"] == "backfill")
