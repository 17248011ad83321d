"""Finding the webhook events in a delivery.

A delivery holds entries (one per business account), each with `messaging[]` (or `standby[]`)
items; each item carries exactly one webhook event (`message`, `reaction`, `read`, ...).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ITEM_LISTS = ("messaging", "standby")
DASHBOARD_TEST_ENTRY_ID = "0"


class EventShapeError(ValueError):
    """A part of a delivery that is not shaped like anything Meta documents."""


@dataclass(frozen=True)
class WebhookEvent:
    path: str  # where it sits in the delivery, e.g. "entry[0].messaging[1]"
    account_id: str  # entry.id: the business account (IG_ID)
    item: Any


def extract_events(payload: Any) -> Iterator[WebhookEvent | EventShapeError]:
    """Every messaging item of every entry, or an error for each part that has no known shape.

    Test entries from the App Dashboard (`id == "0"`, `changes[]`) and non-Instagram objects
    are kept in the raw delivery only.
    """
    # Some of Meta's doc snippets wrap the body in a list; real deliveries are one object.
    bodies = payload if isinstance(payload, list) else [payload]
    for body_index, body in enumerate(bodies):
        prefix = f"[{body_index}]." if isinstance(payload, list) else ""
        if not isinstance(body, dict) or not isinstance(body.get("entry", []), list):
            yield EventShapeError(f"{prefix or 'body'}: not a webhook envelope")
            continue
        if body.get("object", "instagram") != "instagram":
            continue
        for entry_index, entry in enumerate(body.get("entry", [])):
            yield from _entry_events(entry, path=f"{prefix}entry[{entry_index}]")


def _entry_events(entry: Any, *, path: str) -> Iterator[WebhookEvent | EventShapeError]:
    if not isinstance(entry, dict):
        yield EventShapeError(f"{path}: not an object")
        return
    account_id = entry.get("id")
    if isinstance(account_id, int) and not isinstance(account_id, bool):
        account_id = str(account_id)
    if account_id == DASHBOARD_TEST_ENTRY_ID:
        return
    for list_name in ITEM_LISTS:
        items = entry.get(list_name)
        if items is None:
            continue
        if not isinstance(items, list):
            yield EventShapeError(f"{path}.{list_name}: not a list")
            continue
        if not isinstance(account_id, str) or not account_id:
            yield EventShapeError(f"{path}.id: missing account id")
            return
        for item_index, item in enumerate(items):
            yield WebhookEvent(
                path=f"{path}.{list_name}[{item_index}]", account_id=account_id, item=item
            )
