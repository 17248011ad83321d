"""Webhook intake: find the webhook events in a delivery and apply each one to the data model.

- `envelope`: where the webhook events sit in a delivery;
- `collectors`: one per webhook event type, parsing it into the batch;
- `batch`: the per-delivery batch, merging rows by the rules their upserts apply, so each
  table takes one statement;
- `delivery`: `apply_delivery`, isolating a webhook event that fails;
- `accounts`: which accounts are served, and their webhook clocks, remembered per process;
- `pending`: entries of accounts not served yet, applied when they are added.

Every write is idempotent (keyed by Meta's ids), so duplicates and retries change nothing.
The rows crossing into the repositories and the merge rules live beside the SQL that writes
them: app/repositories/rows.py and app/repositories/rules.py.
"""

from app.services.intake.collectors import event_kind
from app.services.intake.delivery import DeliveryOutcome, EventResult, apply_delivery
from app.services.intake.envelope import EventShapeError, WebhookEvent, extract_events

__all__ = [
    "DeliveryOutcome",
    "EventResult",
    "EventShapeError",
    "WebhookEvent",
    "apply_delivery",
    "event_kind",
    "extract_events",
]
