"""The Conversations API, with Meta's rules (shared reference `instagram/graph-api.md` §6):

- `GET /{v}/me/conversations?platform=instagram[&user_id=][&fields=][&limit=][&after=]`:
  conversations, most recently updated first, paged with cursors;
- `GET /{v}/{conversation_id}/messages[?fields=&limit=&after=]`: every message id and time,
  newest first; content (`from`, `to`, `message`, `attachments`) only for the 20 newest;
- `GET /{v}/{conversation_id}[?fields=updated_time,participants,messages.limit(n){...}]` and
  `GET /{v}/{mid}` (both answered by app/sandbox/graph.py's `GET /{v}/{id}`): a conversation
  node; one message, with fresh attachment URLs, or an error as if deleted when it is older
  than the 20 newest;
- at most 2 calls per second per account, beyond that error code 4 (switchable off).
"""

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request

from app.sandbox.deps import BaseUrlDep, SandboxStateDep
from app.sandbox.graph import GraphRoute, invalid_parameter, object_not_found, requested_fields
from app.sandbox.message_nodes import (
    MESSAGE_DEFAULT_FIELDS,
    graph_time,
    message_node,
    participant,
)
from app.sandbox.state import SandboxState
from app.sandbox.threads import (
    NEWEST_WITH_CONTENT,
    conversation_id,
)

MAX_PAGE = 100
DEFAULT_PAGE = 25
# `messages`, `messages.limit(20)`, `messages{id,message}`, `messages.limit(3){id}`.
MESSAGES_EXPANSION = re.compile(r"messages(?:\.limit\((?P<limit>\d+)\))?(?:\{(?P<fields>.*)\})?")


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()))
    except (ValueError, binascii.Error):
        raise invalid_parameter("Invalid cursor") from None


def _page(
    items: list[dict[str, Any]], *, after: str | None, limit: int, next_url: Callable[[str], str]
) -> dict[str, Any]:
    """Graph paging: `data`, and `paging` with cursors (and `next`, from `next_url(cursor)`,
    while more follow)."""
    if not 1 <= limit <= MAX_PAGE:
        raise invalid_parameter(f"limit must be between 1 and {MAX_PAGE}")
    start = _offset(after)
    data = items[start : start + limit]
    end = start + len(data)
    answer: dict[str, Any] = {"data": data}
    if data:
        paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": _cursor(end)}}
        if end < len(items):
            paging["next"] = next_url(_cursor(end))
        answer["paging"] = paging
    return answer


def _same_request_after(request: Request, base_url: str) -> Callable[[str], str]:
    """`next`: this request again from a cursor (its token left out, as Meta's links)."""

    def next_url(cursor: str) -> str:
        query = {k: v for k, v in request.query_params.items() if k != "access_token"}
        return f"{base_url}{request.url.path}?{urlencode({**query, 'after': cursor})}"

    return next_url


def split_fields(fields: str | None) -> list[str]:
    """`fields=a,b,messages.limit(3){id,message}` split at its top-level commas."""
    parts, depth, current = [], 0, ""
    for char in fields or "":
        depth += {"{": 1, "(": 1, "}": -1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [part for part in parts if part]


def messages_edge(
    state: SandboxState,
    customer: str,
    *,
    fields: list[str],
    limit: int,
    after: str | None,
    base_url: str,
    next_url: Callable[[str], str],
) -> dict[str, Any]:
    """A page of a conversation's messages, newest first: every id and time, content for the
    20 newest only (only the page's messages are shaped: fresh URLs are issued for those)."""
    start = _offset(after)
    newest_first = state.threads.newest_first(customer)
    window = newest_first[start : start + max(1, min(limit, MAX_PAGE))]
    shaped: list[dict[str, Any]] = [{} for _ in newest_first]
    for index, message in enumerate(window, start=start):
        shaped[index] = message_node(
            state,
            message,
            fields=fields or list(MESSAGE_DEFAULT_FIELDS),
            with_content=index < NEWEST_WITH_CONTENT,
            base_url=base_url,
        )
    return _page(shaped, after=after, limit=limit, next_url=next_url)


def _expanded_messages(
    state: SandboxState,
    customer: str,
    *,
    edge: str,
    limit: int,
    fields: list[str],
    base_url: str,
) -> dict[str, Any]:
    """`messages.limit(n){fields}` on a conversation: its first page, `next` on the edge."""

    def next_url(cursor: str) -> str:
        query = {"fields": ",".join(fields), "limit": str(limit), "after": cursor}
        return f"{edge}?{urlencode({k: v for k, v in query.items() if v})}"

    return messages_edge(
        state,
        customer,
        fields=fields,
        limit=limit,
        after=None,
        base_url=base_url,
        next_url=next_url,
    )


def conversation_node(
    state: SandboxState, customer: str, *, fields: str | None, base_url: str, version: str
) -> dict[str, Any]:
    """A conversation node: `id` and the requested fields among `updated_time`,
    `participants` and `messages` (expanded as `messages.limit(n){fields}`)."""
    account_id = state.config.account_id
    conversation = conversation_id(account_id=account_id, customer_id=customer)
    newest = state.threads.newest_first(customer)[0]
    node: dict[str, Any] = {"id": conversation}
    for field in split_fields(fields):
        if field == "updated_time":
            node[field] = graph_time(newest.created_ms)
        elif field == "participants":
            node[field] = {"data": [participant(state, account_id), participant(state, customer)]}
        elif expansion := MESSAGES_EXPANSION.fullmatch(field):
            node["messages"] = _expanded_messages(
                state,
                customer,
                edge=f"{base_url}/{version}/{conversation}/messages",
                limit=int(expansion["limit"] or DEFAULT_PAGE),
                fields=requested_fields(expansion["fields"]),
                base_url=base_url,
            )
    return node


router = APIRouter(route_class=GraphRoute)


@router.get("/{version}/me/conversations")
def list_conversations(
    version: str,
    request: Request,
    state: SandboxStateDep,
    base_url: BaseUrlDep,
    platform: str | None = None,
    user_id: str | None = None,
    fields: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: str | None = None,
) -> dict[str, Any]:
    """The account's conversations, most recently updated first (fields expanded as on a
    conversation node, `messages.limit(n){...}` included)."""
    if platform != "instagram":
        raise invalid_parameter("The parameter platform is required and must be instagram")
    customers = [
        customer for customer in state.threads.customers() if user_id is None or customer == user_id
    ]
    customers.sort(key=lambda c: state.threads.newest_first(c)[0].created_ms, reverse=True)
    start = _offset(after)
    # Only the page's conversations are shaped (their messages read, fresh URLs issued).
    shown = set(customers[start : start + max(1, min(limit, MAX_PAGE))])
    items = [
        conversation_node(state, customer, fields=fields, base_url=base_url, version=version)
        if customer in shown
        else {}
        for customer in customers
    ]
    return _page(items, after=after, limit=limit, next_url=_same_request_after(request, base_url))


@router.get("/{version}/{conversation}/messages")
def list_messages(
    conversation: str,
    request: Request,
    state: SandboxStateDep,
    base_url: BaseUrlDep,
    fields: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: str | None = None,
) -> dict[str, Any]:
    """A conversation's messages, newest first: every id and time, content for the 20
    newest only."""
    customer = state.threads.customer_of(conversation, account_id=state.config.account_id)
    if customer is None:
        raise object_not_found(method="get", object_id=conversation)
    return messages_edge(
        state,
        customer,
        fields=requested_fields(fields),
        limit=limit,
        after=after,
        base_url=base_url,
        next_url=_same_request_after(request, base_url),
    )
