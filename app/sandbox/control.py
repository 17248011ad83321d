"""`/_sandbox`: how tests and demos drive the sandbox (no token needed).

They create customers, make them write to the business (a signed webhook to the service),
push arbitrary webhooks, inject Graph faults and read back what the service called.
"""

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from app.sandbox.clock import now_ms
from app.sandbox.config import EchoMode
from app.sandbox.deps import SandboxStateDep
from app.sandbox.ids import new_cdn_url, new_igsid, new_mid, new_username
from app.sandbox.state import (
    Customer,
    CustomerExistsError,
    Fault,
    FaultKind,
    UnknownCustomerError,
)
from app.sandbox.webhooks import delivery, message_item

PREFIX = "/_sandbox"


class CustomerCreate(BaseModel):
    """A customer to create; what is left out gets a default (IGSID and username generated)."""

    id: str | None = Field(default=None, pattern=r"^\d+$", description="IGSID")
    username: str | None = None
    name: str | None = None
    profile_pic: str | None = None
    follower_count: int = Field(default=0, ge=0)
    is_user_follow_business: bool = False
    is_business_follow_user: bool = False
    is_verified_user: bool = False


class InboundAttachment(BaseModel):
    """An attachment in a customer's message; without payload it gets a CDN URL."""

    type: str = Field(description="image, video, audio, file, share, ig_reel, story_mention…")
    payload: dict[str, Any] | None = None


class CustomerMessageCreate(BaseModel):
    """What the customer writes; at least `text` or `attachments`."""

    text: str | None = None
    attachments: list[InboundAttachment] | None = None
    reply_to: dict[str, Any] | None = Field(default=None, examples=[{"mid": "aWdf…ZDZD"}])
    quick_reply: dict[str, Any] | None = Field(default=None, examples=[{"payload": "TRACK"}])
    referral: dict[str, Any] | None = None
    timestamp_ms: int | None = Field(
        default=None, gt=0, description="When it was written (default now); older opens no window"
    )
    deliver: bool = Field(default=True, description="POST the webhook to the service")

    @model_validator(mode="after")
    def has_content(self) -> "CustomerMessageCreate":
        if self.text is None and not self.attachments:
            raise ValueError("a message needs text or attachments")
        return self


class WebhookPush(BaseModel):
    """Any delivery body to POST to the service, signed unless `sign` is false."""

    payload: Any
    sign: bool = True


class SettingsUpdate(BaseModel):
    """Runtime knobs to change; omitted ones stay."""

    echo_mode: EchoMode | None = None
    latency_ms: int | None = Field(default=None, ge=0)
    webhook_url: AnyHttpUrl | None = None


class FaultError(BaseModel):
    """A Meta error body (without `fbtrace_id`, which is added); extra keys pass through."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str = "OAuthException"
    code: int
    error_subcode: int | None = None


class FaultCreate(BaseModel):
    """Misbehave on the next `times` Graph calls of `kind`: wait, then maybe fail."""

    kind: FaultKind = "any"
    status: int = Field(default=400, ge=400, le=599)
    error: FaultError | None = None
    delay_seconds: float = Field(default=0, ge=0, le=300)
    times: int = Field(default=1, ge=1)


router = APIRouter(prefix=PREFIX, tags=["sandbox control"])


@router.post("/customers", status_code=201)
def create_customer(body: CustomerCreate, state: SandboxStateDep) -> dict[str, Any]:
    """Create a customer (an Instagram user with an IGSID for this business)."""
    fields = body.model_dump(exclude={"id", "username"})
    customer = Customer(
        id=body.id or new_igsid(), username=body.username or new_username(), **fields
    )
    return dataclasses.asdict(state.add_customer(customer))


@router.get("/customers")
def list_customers(state: SandboxStateDep) -> list[dict[str, Any]]:
    """All customers."""
    return [dataclasses.asdict(customer) for customer in state.customers()]


@router.get("/customers/{igsid}")
def read_customer(igsid: str, state: SandboxStateDep) -> dict[str, Any]:
    """One customer, with consent and window state."""
    customer = state.get_customer(igsid)
    if customer is None:
        raise UnknownCustomerError(f"customer {igsid} does not exist")
    return dataclasses.asdict(customer)


@router.post("/customers/{igsid}/messages", status_code=201)
def customer_writes(
    igsid: str, body: CustomerMessageCreate, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer messages the business: window opens, webhook goes to the service."""
    timestamp_ms = body.timestamp_ms or now_ms()
    state.record_inbound(igsid=igsid, timestamp_ms=timestamp_ms)
    account_id = state.config.account_id
    mid = new_mid(account_id=account_id)
    attachments = None
    if body.attachments:
        attachments = [
            {"type": item.type, "payload": item.payload or {"url": new_cdn_url()}}
            for item in body.attachments
        ]
    item = message_item(
        customer_id=igsid,
        account_id=account_id,
        mid=mid,
        timestamp_ms=timestamp_ms,
        text=body.text,
        attachments=attachments,
        quick_reply=body.quick_reply,
        reply_to=body.reply_to,
        referral=body.referral,
    )
    payload = delivery(account_id=account_id, items=[item])
    result = state.deliver_webhook(payload=payload) if body.deliver else None
    return {
        "mid": mid,
        "payload": payload,
        "delivery": dataclasses.asdict(result) if result else None,
    }


@router.post("/webhooks")
def push_webhook(body: WebhookPush, state: SandboxStateDep) -> dict[str, Any]:
    """POST any payload to the service's webhook URL (reactions, edits, broken bodies…)."""
    return dataclasses.asdict(state.deliver_webhook(payload=body.payload, signed=body.sign))


@router.get("/sent")
def list_sent(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Send API calls received, with the answer given."""
    return [dataclasses.asdict(send) for send in state.sent()]


@router.get("/calls")
def list_calls(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Every Graph call received: method, path, kind, status code."""
    return [dataclasses.asdict(call) for call in state.calls()]


@router.get("/config")
def read_settings(state: SandboxStateDep) -> dict[str, Any]:
    """Current runtime knobs."""
    return state.settings()


@router.put("/config")
def update_settings(body: SettingsUpdate, state: SandboxStateDep) -> dict[str, Any]:
    """Change echo mode, latency or webhook URL while running."""
    return state.update_settings(
        echo_mode=body.echo_mode,
        latency_ms=body.latency_ms,
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
    )


@router.post("/faults", status_code=201)
def add_fault(body: FaultCreate, state: SandboxStateDep) -> list[dict[str, Any]]:
    """Queue a fault for upcoming Graph calls; returns the pending faults."""
    error = body.error.model_dump(exclude_none=True) if body.error else None
    state.add_fault(
        Fault(
            kind=body.kind,
            times=body.times,
            status_code=body.status,
            error=error,
            delay_seconds=body.delay_seconds,
        )
    )
    return [dataclasses.asdict(fault) for fault in state.faults()]


@router.get("/faults")
def list_faults(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Faults still waiting to fire."""
    return [dataclasses.asdict(fault) for fault in state.faults()]


@router.delete("/faults")
def clear_faults(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Drop every pending fault."""
    state.clear_faults()
    return []


@router.post("/reset")
def reset(state: SandboxStateDep) -> dict[str, Any]:
    """Back to a fresh start: no customers, calls, sends or faults; knobs from the config."""
    state.reset()
    return state.settings()


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
def unknown_control_route(path: str) -> JSONResponse:
    """Keep typos under `/_sandbox` out of the Graph catch-all (which would demand a token)."""
    return JSONResponse(
        {"detail": f"no sandbox route {PREFIX}/{path}", "code": "not_found"}, status_code=404
    )


def unknown_customer_handler(request: Request, error: Exception) -> JSONResponse:
    """404 in the service's error shape."""
    return JSONResponse({"detail": str(error), "code": "not_found"}, status_code=404)


def customer_exists_handler(request: Request, error: Exception) -> JSONResponse:
    """409 in the service's error shape."""
    return JSONResponse({"detail": str(error), "code": "conflict"}, status_code=409)


EXCEPTION_HANDLERS = {
    UnknownCustomerError: unknown_customer_handler,
    CustomerExistsError: customer_exists_handler,
}
