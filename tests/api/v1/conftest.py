"""Builders for /api/v1 tests: long threads stored fast."""

from typing import Any

from app.sandbox import webhooks
from tests.helpers import ACCOUNT_ID, ServiceClient

START_MS = 1745923800000


def store_thread(
    api: ServiceClient, *, customer_id: str, count: int, start_ms: int = START_MS, prefix: str = "m"
) -> list[str]:
    """`count` messages (inbound, every third one an echo) delivered in batches; their mids in
    time order."""
    mids = []
    batch: list[dict[str, Any]] = []
    for number in range(count):
        mid = f"{prefix}-{number:05}"
        ids = {"account_id": ACCOUNT_ID, "customer_id": customer_id, "mid": mid}
        timestamp = start_ms + number * 1000
        if number % 3 == 2:
            batch.append(webhooks.echo_item(**ids, timestamp_ms=timestamp, text=f"reply {number}"))
        else:
            batch.append(
                webhooks.message_item(**ids, timestamp_ms=timestamp, text=f"message {number}")
            )
        mids.append(mid)
        if len(batch) == 100 or number == count - 1:
            assert (
                api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=batch)).status_code
                == 200
            )
            batch = []
    return mids
