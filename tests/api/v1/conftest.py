"""Builders for /api/v1 tests: a customer who wrote in, and long threads stored fast."""

from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.sandbox import webhooks
from app.sandbox.server import BackgroundServer
from tests.helpers import (
    ACCOUNT_ID,
    ServiceClient,
    customer_writes,
    new_customer,
    wait_for_profiles,
)

START_MS = 1745923800000


@pytest.fixture
def anna(meta: ServiceClient, service: BackgroundServer, db: Session) -> dict[str, Any]:
    """A sandbox customer who just wrote to the business (window open, profile fetched)."""
    customer = new_customer(
        meta, username="anna_k", name="Anna K", profile_pic="https://cdn.test/a.jpg"
    )
    customer_writes(meta, customer["id"], "Hi! Do you ship to Berlin?")
    wait_for_profiles(db, customer["id"], ACCOUNT_ID)
    return customer


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
