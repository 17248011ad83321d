"""The messaging window: Instagram takes a business's messages for 24 hours after the
customer's last message, and for 7 days when a human agent replies with the HUMAN_AGENT tag.

The one home of that rule: sending and reactions check it, the v1 read schemas show its
deadlines, and the sandbox emulates Meta with it.
"""

from datetime import datetime, timedelta

from app.errors import ConflictError

STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
HUMAN_AGENT_TAG = "HUMAN_AGENT"  # the only message tag Instagram accepts


def length(tag: str | None) -> timedelta:
    """How long after the customer's last message a send with this tag is allowed."""
    return HUMAN_AGENT_WINDOW if tag == HUMAN_AGENT_TAG else STANDARD_WINDOW


def can_reply_until(last_inbound_at: datetime | None) -> datetime | None:
    """When untagged replies stop being allowed (None: the customer never wrote)."""
    return last_inbound_at + STANDARD_WINDOW if last_inbound_at is not None else None


def human_agent_until(last_inbound_at: datetime | None) -> datetime | None:
    """When replies tagged HUMAN_AGENT stop being allowed (None: the customer never wrote)."""
    return last_inbound_at + HUMAN_AGENT_WINDOW if last_inbound_at is not None else None


def is_open(*, last_inbound_at: datetime, tag: str | None, now: datetime) -> bool:
    return now - last_inbound_at <= length(tag)


def check(last_inbound_at: datetime | None, *, tag: str | None, now: datetime) -> None:
    """409 `outside_window` when our own records (the conversation's `last_inbound_at`)
    show the window is closed. With no customer message stored we know nothing, and Meta's
    answer decides."""
    if last_inbound_at is None or is_open(last_inbound_at=last_inbound_at, tag=tag, now=now):
        return
    raise ConflictError(
        f"The customer last wrote at {last_inbound_at.isoformat()}; "
        f"Instagram allows replies for {_describe(length(tag))} after that"
        + ("" if tag else " (7 days for a human agent with the HUMAN_AGENT tag)")
        + ".",
        code="outside_window",
    )


def _describe(window: timedelta) -> str:
    return f"{window.days} days" if window.days else f"{window.seconds // 3600} hours"
