"""Pools of pre-built requests for wrk (bench/wrk/pool.lua), one request per line.

Webhook pools hold `signature<TAB>body` lines: deliveries shaped and signed like Meta's, every
message with a `mid` of its own, so each delivery the service takes is new work.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.sandbox import webhooks
from app.sandbox.clock import now_ms
from app.security import sign_body
from bench.stack import ACCOUNT_ID, APP_SECRET

# Customers whose messages the ingest pools carry: enough that concurrent deliveries rarely
# touch the same conversation row, as with real traffic.
INGEST_CUSTOMERS = 1000
FIRST_CUSTOMER_ID = 1_780_000_000_000_000


def customer_id(number: int) -> str:
    """The IGSID of bench customer `number`."""
    return str(FIRST_CUSTOMER_ID + number)


@dataclass(frozen=True)
class Pool:
    """A pool file and what it holds."""

    path: Path
    lines: int
    events_per_line: int = 1


def write_webhook_pool(
    path: Path,
    *,
    prefix: str,
    deliveries: int,
    events_per_delivery: int,
    image_urls: list[str] | None = None,
) -> Pool:
    """`deliveries` signed deliveries of `events_per_delivery` new messages each.

    Message k of delivery n has mid `<prefix>-n-k` and comes from customer (n·events + k)
    modulo INGEST_CUSTOMERS, so one delivery carries distinct customers in ascending order.
    With `image_urls`, each message is an image (those URLs in turn) instead of a text.
    """
    start_ms = now_ms()
    with path.open("w") as pool:
        for number in range(deliveries):
            items = []
            for index in range(events_per_delivery):
                sequence = number * events_per_delivery + index
                content: dict[str, Any] = {"text": f"bench message {sequence}"}
                if image_urls:
                    url = image_urls[sequence % len(image_urls)]
                    content = {"attachments": [{"type": "image", "payload": {"url": url}}]}
                items.append(
                    webhooks.message_item(
                        customer_id=customer_id(sequence % INGEST_CUSTOMERS),
                        account_id=ACCOUNT_ID,
                        mid=f"{prefix}-{number}-{index}",
                        timestamp_ms=start_ms + sequence,
                        **content,
                    )
                )
            body = webhooks.encode(
                webhooks.delivery(account_id=ACCOUNT_ID, items=items, time_ms=start_ms + number)
            )
            pool.write(f"{sign_body(secret=APP_SECRET, body=body)}\t{body.decode()}\n")
    return Pool(path=path, lines=deliveries, events_per_line=events_per_delivery)


def write_request_pool(path: Path, requests: Iterable[tuple[str, str, Any]]) -> Pool:
    """Lines of `METHOD<TAB>PATH<TAB>JSON body` (an empty body for None)."""
    lines = 0
    with path.open("w") as pool:
        for method, target, body in requests:
            encoded = "" if body is None else json.dumps(body, separators=(",", ":"))
            pool.write(f"{method}\t{target}\t{encoded}\n")
            lines += 1
    return Pool(path=path, lines=lines)
