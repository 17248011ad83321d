"""The Conversations API as the history sync reads it: paced to Meta's budget of 2 calls a
second per account, backing off when Meta says a rate limit was hit, and its answers turned
into typed records.

Meta lists every conversation (except Requests-folder threads idle for 30 days) and every
message id with its time, but gives the content of a thread's 20 newest messages only; an
older message comes with its id, time and sides, and nothing else.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from app.clients.instagram import MESSAGE_FIELDS, InstagramClient
from app.clients.instagram_errors import RateLimitedError

T = TypeVar("T")

# Seconds to wait after each rate-limited answer in a row (or what Meta's Retry-After says,
# when longer); after the last the error is raised: that conversation is recorded as failed.
RATE_LIMIT_BACKOFF = (2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
# Message fields whose presence means Meta gave the content.
CONTENT_FIELDS = ("message", "attachments", "story", "shares", "is_unsupported")


@dataclass(frozen=True, slots=True)
class ListedConversation:
    graph_id: str
    customer_id: str | None
    updated_time: datetime | None


@dataclass(frozen=True, slots=True)
class ListedMessage:
    """A message as Meta lists it; `has_content` False: only its id, time and sides."""

    mid: str
    sent_at: datetime
    sender_id: str | None
    recipient_id: str | None
    has_content: bool
    text: str | None = None
    attachments: list[dict[str, Any]] | None = None
    reply_to: dict[str, Any] | None = None
    is_unsupported: bool = False


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    after: str | None  # the cursor of the next page; None on the last one


class Pacer:
    """At most `rate` calls a second, evenly spaced and a tenth under the rate, so that calls
    a network delay bunches together still fit Meta's sliding second (0: no limit, for
    benchmarks only)."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.1 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            if self._next > now:
                self._sleep(self._next - now)
                now = self._next
            self._next = now + self._interval


class ConversationsReader:
    """One account's Conversations API, paced. `instagram` calls with that account's token."""

    def __init__(
        self,
        instagram: InstagramClient,
        *,
        account_id: str,
        pacer: Pacer,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.account_id = account_id
        self._instagram = instagram
        self._pacer = pacer
        self._sleep = sleep
        self.calls = 0

    def conversations(self, *, after: str | None = None) -> Page[ListedConversation]:
        """A page of the account's threads, newest activity first."""
        answer = self._call(self._instagram.list_conversations, after=after)
        return Page([self._conversation(node) for node in _nodes(answer)], _next_cursor(answer))

    def conversation_with(self, customer_id: str) -> ListedConversation | None:
        """The thread with one customer (None: Meta does not list it)."""
        answer = self._call(self._instagram.list_conversations, user_id=customer_id)
        nodes = _nodes(answer)
        return self._conversation(nodes[0]) if nodes else None

    def messages(self, graph_id: str, *, after: str | None = None) -> Page[ListedMessage]:
        """A page of a thread's messages, newest first."""
        answer = self._call(
            self._instagram.conversation_messages, graph_id, after=after, fields=MESSAGE_FIELDS
        )
        listed = (_message(node) for node in _nodes(answer))
        return Page([message for message in listed if message is not None], _next_cursor(answer))

    def _call(self, call: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        for delay in (*RATE_LIMIT_BACKOFF, None):
            self._pacer.wait()
            self.calls += 1
            try:
                return call(*args, **kwargs)
            except RateLimitedError as error:
                if delay is None:
                    raise
                retry_after = error.headers.get("Retry-After", "") if error.headers else ""
                self._sleep(max(delay, float(retry_after) if retry_after.isdigit() else 0.0))
        raise AssertionError("unreachable")

    def _conversation(self, node: dict[str, Any]) -> ListedConversation:
        participants = node.get("participants")
        people = participants.get("data") if isinstance(participants, dict) else None
        customers = [
            _id_of(person)
            for person in (people if isinstance(people, list) else [])
            if _id_of(person) not in (None, self.account_id)
        ]
        return ListedConversation(
            graph_id=str(node["id"]),
            customer_id=customers[0] if customers else None,
            updated_time=parse_time(node.get("updated_time")),
        )


def parse_time(value: Any) -> datetime | None:
    """Meta's times: ISO 8601 with `+0000`, or Unix seconds (its docs say both)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
        except ValueError:
            try:
                return datetime.fromisoformat(value).astimezone(UTC)
            except ValueError:
                return None
    return None


def _nodes(answer: dict[str, Any]) -> list[dict[str, Any]]:
    data = answer.get("data")
    return (
        [node for node in data if isinstance(node, dict) and node.get("id")]
        if isinstance(data, list)
        else []
    )


def _next_cursor(answer: dict[str, Any]) -> str | None:
    paging = answer.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return str(after) if after else None


def _message(node: dict[str, Any]) -> ListedMessage | None:
    sent_at = parse_time(node.get("created_time"))
    if sent_at is None:
        return None
    sender = node.get("from")
    recipients = node.get("to", {}).get("data") if isinstance(node.get("to"), dict) else None
    recipient = recipients[0] if isinstance(recipients, list) and recipients else None
    has_content = any(field in node for field in CONTENT_FIELDS)
    return ListedMessage(
        mid=str(node["id"]),
        sent_at=sent_at,
        sender_id=_id_of(sender),
        recipient_id=_id_of(recipient),
        has_content=has_content,
        text=(node.get("message") or None) if has_content else None,
        attachments=webhook_attachments(node) if has_content else None,
        reply_to=_reply_to(node),
        is_unsupported=bool(node.get("is_unsupported")),
    )


def _id_of(person: Any) -> str | None:
    return str(person["id"]) if isinstance(person, dict) and person.get("id") else None


def _reply_to(node: dict[str, Any]) -> dict[str, Any] | None:
    reply_to = node.get("reply_to")
    if isinstance(reply_to, dict) and reply_to.get("mid"):
        return {"mid": str(reply_to["mid"])}
    story = node.get("story")
    if isinstance(story, dict) and isinstance(story.get("reply_to"), dict):
        return {"story": {"url": story["reply_to"].get("link"), "id": story["reply_to"].get("id")}}
    return None


def webhook_attachments(node: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The Conversations API's attachments, shares and story mentions in the shape webhooks
    give them (`[{type, payload: {url}}]`), so a backfilled message reads like any other."""
    attachments: list[dict[str, Any]] = []
    listed = node.get("attachments")
    for item in listed.get("data", []) if isinstance(listed, dict) else []:
        if not isinstance(item, dict):
            continue
        kind, url = _attachment_kind(item)
        attachments.append({"type": kind, "payload": {"url": url}})
    shares = node.get("shares")
    for share in shares.get("data", []) if isinstance(shares, dict) else []:
        if isinstance(share, dict):
            attachments.append({"type": "share", "payload": {"url": share.get("link")}})
    story = node.get("story")
    if isinstance(story, dict) and isinstance(story.get("mention"), dict):
        mention = story["mention"]
        attachments.append(
            {
                "type": "story_mention",
                "payload": {"url": mention.get("link"), "id": mention.get("id")},
            }
        )
    return attachments or None


def _attachment_kind(item: dict[str, Any]) -> tuple[str, Any]:
    for key, kind in (("image_data", "image"), ("video_data", "video")):
        data = item.get(key)
        if isinstance(data, dict):
            return kind, data.get("url")
    mime = str(item.get("mime_type") or "")
    return ("audio" if mime.startswith("audio/") else "file"), item.get("file_url")
