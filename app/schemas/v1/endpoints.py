"""Webhook endpoints at /api/v1/webhook-endpoints: what they take and what they answer."""

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import WebhookEndpoint

_ENDPOINT: dict[str, Any] = {
    "id": "we_3oFq9bXk1vY2",
    "url": "https://crm.example.com/instagram/events",
    "description": "CRM inbox",
    "event_types": ["message.received", "message.sent"],
    "account_ids": None,
    "enabled": True,
    "disabled_reason": None,
    "disabled_at": None,
    "created_at": "2026-11-30T13:30:00Z",
    "updated_at": "2026-11-30T13:30:00Z",
}
_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 (an example)

IgId = Annotated[str, Field(pattern=r"^[0-9]{1,64}$")]
EventType = Annotated[str, Field(min_length=1, max_length=64)]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/instagram/events",
                    "event_types": ["message.received", "message.sent"],
                    "description": "CRM inbox",
                }
            ]
        },
    )

    url: str = Field(max_length=2000, description="https, at a public address.")
    event_types: list[EventType] | None = Field(
        default=None, max_length=20, description="The types it receives (all when absent)."
    )
    account_ids: list[IgId] | None = Field(
        default=None, max_length=100, description="The business accounts (all when absent)."
    )
    description: str | None = Field(default=None, max_length=500)


class WebhookEndpointUpdate(BaseModel):
    """Only the fields given change; `null` filters mean all again."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"event_types": None, "enabled": True}]},
    )

    url: str | None = Field(default=None, max_length=2000)
    event_types: list[EventType] | None = Field(default=None, max_length=20)
    account_ids: list[IgId] | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(
        default=None, description="`true` enables a disabled endpoint again (from now on)."
    )


class WebhookEndpointRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ENDPOINT]})

    id: str
    url: str
    description: str | None
    event_types: list[str] | None
    account_ids: list[str] | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointRead):
    model_config = ConfigDict(json_schema_extra={"examples": [{**_ENDPOINT, "secret": _SECRET}]})

    secret: str = Field(description="`whsec_…`: verify signatures with it. Shown only here.")


class SecretRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"secret": _SECRET}]})

    secret: str = Field(
        description="The new `whsec_…` secret; the previous one also signs for 24 hours."
    )


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"since_seq": 42}]})

    since_seq: int = Field(ge=0, le=2**63 - 1, description="Re-deliver events from this seq.")


class ReplayRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"deliveries": 17}]})

    deliveries: int = Field(description="How many deliveries are pending again.")


class PingRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"event_id": "evt_kq3XoI2vJ8R0yZ3aW1bC5dEf"}]}
    )

    event_id: str


class DeliveryAttemptRead(BaseModel):
    id: str = Field(description="The attempt's id.")
    delivery_id: str = Field(description="The delivery (one event to this endpoint) it was of.")
    event_id: str
    event_seq: int
    event_type: str
    attempt: int = Field(description="1 for the delivery's first attempt (a replay restarts).")
    attempted_at: datetime
    status_code: int | None = Field(description="The endpoint's answer; null: none came.")
    duration_ms: int
    error: str | None = Field(description="Why it failed (null: a 2xx).")
    delivery_status: Literal["pending", "succeeded", "failed"] = Field(
        description="The delivery's status now (`failed`: given up)."
    )
    next_attempt_at: datetime | None = Field(
        description="The delivery's next attempt (pending deliveries only)."
    )


class DeliveryAttemptPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "id": "12",
                            "delivery_id": "7",
                            "event_id": "evt_kq3XoI2vJ8R0yZ3aW1bC5dEf",
                            "event_seq": 42,
                            "event_type": "message.received",
                            "attempt": 2,
                            "attempted_at": "2026-11-30T13:31:05Z",
                            "status_code": 503,
                            "duration_ms": 41,
                            "error": "HTTP 503",
                            "delivery_status": "pending",
                            "next_attempt_at": "2026-11-30T14:01:05Z",
                        }
                    ]
                }
            ]
        }
    )

    data: list[DeliveryAttemptRead]


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """A WebhookEndpointRead (never the secret)."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "account_ids": endpoint.account_ids,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": endpoint.disabled_at,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


def attempt_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A DeliveryAttemptRead: an event_delivery_attempts row with its delivery and its
    event's `event_id`, `event_type`."""
    attempt = row["EventDeliveryAttempt"]
    delivery = row["EventDelivery"]
    return {
        "id": str(attempt.id),
        "delivery_id": str(delivery.id),
        "event_id": row["event_id"],
        "event_seq": delivery.event_seq,
        "event_type": row["event_type"],
        "attempt": attempt.number,
        "attempted_at": attempt.attempted_at,
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "error": attempt.error,
        "delivery_status": delivery.status,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
    }
