"""The Conversations API, with Meta's rules (shared reference `instagram/graph-api.md` §6):

- `GET /{v}/me/conversations?platform=instagram[&user_id=][&fields=][&limit=][&after=]`:
  conversations, most recently updated first, paged with cursors;
- `GET /{v}/{conversation_id}/messages[?fields=&limit=&after=]`: every message id and time,
  newest first; content (`from`, `to`, `message`, `attachments`) only for the 20 newest;
- `GET /{v}/{mid}` (in app/sandbox/graph.py): one message, with fresh attachment URLs, or
  an error as if deleted when it is older than the 20 newest;
- at most 2 calls per second per account, beyond that error code 4 (switchable off).
"""

import base64
import binascii
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

CONVERSATION_DEFAULT_FIELDS = ("id",)
MAX_PAGE = 100


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
    items: list[dict[str, Any]], *, request: Request, base_url: str, after: str | None, limit: int
) -> dict[str, Any]:
    """Graph paging: `data`, and `paging` with cursors (and `next` while more follow)."""
    if not 1 <= limit <= MAX_PAGE:
        raise invalid_parameter(f"limit must be between 1 and {MAX_PAGE}")
    start = _offset(after)
    data = items[start : start + limit]
    end = start + len(data)
    answer: dict[str, Any] = {"data": data}
    if data:
        paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": _cursor(end)}}
        if end < len(items):
            query = {k: v for k, v in request.query_params.items() if k != "access_token"}
            query["after"] = _cursor(end)
            paging["next"] = f"{base_url}{request.url.path}?{urlencode(query)}"
        answer["paging"] = paging
    return answer


def customer_of_conversation(state: SandboxState, conversation: str) -> str | None:
    account_id = state.config.account_id
    for customer in state.threads.customers():
        if conversation_id(account_id=account_id, customer_id=customer) == conversation:
            return customer
    return None


router = APIRouter(route_class=GraphRoute)


@router.get("/{version}/me/conversations")
def list_conversations(
    request: Request,
    state: SandboxStateDep,
    base_url: BaseUrlDep,
    platform: str | None = None,
    user_id: str | None = None,
    fields: str | None = None,
    limit: int = 25,
    after: str | None = None,
) -> dict[str, Any]:
    """The account's conversations, most recently updated first."""
    if platform != "instagram":
        raise invalid_parameter("The parameter platform is required and must be instagram")
    account_id = state.config.account_id
    wanted = requested_fields(fields) or list(CONVERSATION_DEFAULT_FIELDS)
    threads = []
    for customer in state.threads.customers():
        if user_id is not None and customer != user_id:
            continue
        newest = state.threads.newest_first(customer)[0]
        node = {
            "id": conversation_id(account_id=account_id, customer_id=customer),
            "updated_time": graph_time(newest.created_ms),
            "participants": {
                "data": [participant(state, account_id), participant(state, customer)]
            },
        }
        threads.append((newest.created_ms, {f: node[f] for f in ["id", *wanted] if f in node}))
    threads.sort(key=lambda pair: pair[0], reverse=True)
    items = [node for _, node in threads]
    return _page(items, request=request, base_url=base_url, after=after, limit=limit)


@router.get("/{version}/{conversation}/messages")
def list_messages(
    conversation: str,
    request: Request,
    state: SandboxStateDep,
    base_url: BaseUrlDep,
    fields: str | None = None,
    limit: int = 25,
    after: str | None = None,
) -> dict[str, Any]:
    """A conversation's messages, newest first: every id and time, content for the 20
    newest only."""
    customer = customer_of_conversation(state, conversation)
    if customer is None:
        raise object_not_found(method="get", object_id=conversation)
    wanted = requested_fields(fields) or list(MESSAGE_DEFAULT_FIELDS)
    start = _offset(after)
    newest_first = state.threads.newest_first(customer)
    # Only the page's messages are shaped (fresh URLs are issued for what is shown).
    window = newest_first[start : start + max(1, min(limit, MAX_PAGE))]
    shaped: list[dict[str, Any]] = [{} for _ in newest_first]
    for index, message in enumerate(window, start=start):
        shaped[index] = message_node(
            state,
            message,
            fields=wanted,
            with_content=index < NEWEST_WITH_CONTENT,
            base_url=base_url,
        )
    return _page(shaped, request=request, base_url=base_url, after=after, limit=limit)
