"""`/_sandbox`: how tests and demos drive the sandbox (no token needed).

They create customers, make them act like Instagram users (write, react, unsend, edit, read,
tap buttons, follow links: each a signed webhook to the service), push arbitrary webhooks,
inject Graph faults and read back what the service called.
"""

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from app.sandbox.clock import now_ms
from app.sandbox.config import EchoMode
from app.sandbox.deps import SandboxStateDep
from app.sandbox.ids import new_cdn_url, new_igsid, new_media_id, new_mid, new_username
from app.sandbox.state import (
    Customer,
    CustomerExistsError,
    Fault,
    FaultKind,
    SandboxState,
    UnknownCustomerError,
)
from app.sandbox.webhooks import (
    ReactionAction,
    delivery,
    edit_item,
    message_item,
    postback_item,
    reaction_item,
    read_item,
    referral_item,
    unsend_item,
)

PREFIX = "/_sandbox"

ReactionName = Literal["love", "like", "laugh", "wow", "sad", "angry", "other"]


class UnplayableEventError(ValueError):
    """A well-formed request for an event the sandbox's state cannot produce."""


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


class EventCreate(BaseModel):
    """What every customer event takes: when it happened and how it is delivered."""

    timestamp_ms: int | None = Field(
        default=None, gt=0, description="When it happened (default now); older opens no window"
    )
    deliver: bool = Field(default=True, description="POST the webhook to the service")
    standby: bool = Field(
        default=False,
        description="Deliver under `entry[].standby[]`, as when another app owns the thread",
    )


class CustomerMessageCreate(EventCreate):
    """What the customer writes: `text`, `attachments` or an unsupported (`is_unsupported`)."""

    text: str | None = None
    attachments: list[InboundAttachment] | None = None
    is_unsupported: bool = Field(
        default=False, description="Content the API cannot show (`unsupported.json`)"
    )
    reply_to: dict[str, Any] | None = Field(
        default=None,
        examples=[{"mid": "aWdf…ZDZD"}, {"story": {"url": "https://…", "id": "1804…"}}],
    )
    quick_reply: dict[str, Any] | None = Field(default=None, examples=[{"payload": "TRACK"}])
    referral: dict[str, Any] | None = Field(
        default=None,
        description="An ad's referral (`referral_ad_first_message.json`)",
        examples=[{"ref": "summer_ad", "ad_id": "1202…", "source": "ADS", "type": "OPEN_THREAD"}],
    )

    @model_validator(mode="after")
    def has_content(self) -> "CustomerMessageCreate":
        has_content = self.text is not None or bool(self.attachments)
        if has_content == self.is_unsupported:
            raise ValueError("a message needs text or attachments, or is_unsupported alone")
        return self


class StoryReplyCreate(EventCreate):
    """The customer answers one of the business's stories."""

    text: str = Field(min_length=1)
    story_id: str | None = Field(default=None, pattern=r"^\d+$", description="Default: a new id")


class ReactionCreate(EventCreate):
    """The customer reacts to a message (usually the business's) or takes the reaction back."""

    mid: str = Field(min_length=1)
    action: ReactionAction = "react"
    reaction: ReactionName | None = Field(default=None, description="Needed to react")
    emoji: str | None = Field(default=None, description="Default: Meta's emoji for `reaction`")

    @model_validator(mode="after")
    def fits_action(self) -> "ReactionCreate":
        if self.action == "react" and self.reaction is None:
            raise ValueError("react needs a reaction")
        if self.action == "unreact" and (self.reaction or self.emoji):
            raise ValueError("unreact carries no reaction or emoji")
        return self


class UnsendCreate(EventCreate):
    """The customer unsends one of their messages."""

    mid: str = Field(min_length=1)


class EditCreate(EventCreate):
    """The customer edits one of their messages: the new full text."""

    mid: str = Field(min_length=1)
    text: str = Field(min_length=1)
    num_edit: int | None = Field(default=None, ge=1, description="Default: count this mid's edits")


class ReadCreate(EventCreate):
    """The customer sees the business's messages; without `mid` or `watermark`, the newest."""

    mid: str | None = Field(default=None, min_length=1)
    watermark: int | None = Field(default=None, gt=0, description="Read up to this time (ms)")

    @model_validator(mode="after")
    def at_most_one_mark(self) -> "ReadCreate":
        if self.mid is not None and self.watermark is not None:
            raise ValueError("a read names a mid or a watermark, not both")
        return self


class PostbackCreate(EventCreate):
    """The customer taps an icebreaker, a template button or a persistent-menu item."""

    title: str = Field(min_length=1)
    payload: str = Field(min_length=1)
    referral: dict[str, Any] | None = Field(
        default=None,
        description="Set when an ig.me link with `?ref=` opened a new thread",
        examples=[{"ref": "spring_sale", "source": "SHORTLINK", "type": "OPEN_THREAD"}],
    )


class ReferralCreate(EventCreate):
    """The customer follows an ig.me link (or an ad) into their existing thread."""

    ref: str = Field(min_length=1)
    ad_id: str | None = Field(default=None, pattern=r"^\d+$")
    source: str = "SHORTLINK"
    type: str = "OPEN_THREAD"
    ads_context_data: dict[str, Any] | None = None


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
    """Misbehave on the next `times` Graph calls of `kind`: wait, then maybe fail, or answer
    `body` instead of the real answer."""

    kind: FaultKind = "any"
    status: int = Field(default=400, ge=200, le=599)
    error: FaultError | None = None
    body: dict[str, Any] | None = Field(
        default=None,
        description="The JSON to answer instead (e.g. a 200 without `message_id`)",
        examples=[{"recipient_id": "1187429836452190"}],
    )
    delay_seconds: float = Field(default=0, ge=0, le=300)
    times: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def success_has_a_body(self) -> "FaultCreate":
        if self.status < 400 and self.body is None:
            raise ValueError("a fault answering below 400 needs a body")
        return self


def known_customer(igsid: str, state: SandboxStateDep) -> Customer:
    """The customer the path names; 404 when there is none."""
    return state.require_customer(igsid)


KnownCustomerDep = Annotated[Customer, Depends(known_customer)]


def push_event(
    *,
    state: SandboxState,
    customer: Customer,
    options: EventCreate,
    build: Callable[..., dict[str, Any]],
    opens_window: bool = False,
    **content: Any,
) -> dict[str, Any]:
    """A customer event: `build(content)` its item, open the window if asked, deliver it."""
    timestamp_ms = options.timestamp_ms or now_ms()
    if opens_window:
        # Messages, postbacks and referrals count as the customer writing; reactions, reads,
        # edits and unsends do not.
        state.record_inbound(igsid=customer.id, timestamp_ms=timestamp_ms)
    account_id = state.config.account_id
    item = build(
        customer_id=customer.id, account_id=account_id, timestamp_ms=timestamp_ms, **content
    )
    payload = delivery(account_id=account_id, items=[item], standby=options.standby)
    result = state.deliver_webhook(payload=payload) if options.deliver else None
    return {"payload": payload, "delivery": dataclasses.asdict(result) if result else None}


def written_event(
    *,
    state: SandboxState,
    customer: Customer,
    options: EventCreate,
    build: Callable[..., dict[str, Any]] = message_item,
    **content: Any,
) -> dict[str, Any]:
    """Something the customer writes (a message, a postback): new mid, consent, window, webhook."""
    mid = new_mid(account_id=state.config.account_id)
    event = push_event(
        state=state,
        customer=customer,
        options=options,
        build=build,
        opens_window=True,
        mid=mid,
        **content,
    )
    return {"mid": mid, **event}


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
def read_customer(customer: KnownCustomerDep) -> dict[str, Any]:
    """One customer, with consent and window state."""
    return dataclasses.asdict(customer)


@router.post("/customers/{igsid}/messages", status_code=201)
def customer_writes(
    body: CustomerMessageCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer messages the business: window opens, webhook goes to the service."""
    attachments = None
    if body.attachments:
        attachments = [
            {"type": item.type, "payload": item.payload or {"url": new_cdn_url()}}
            for item in body.attachments
        ]
    return written_event(
        state=state,
        customer=customer,
        options=body,
        text=body.text,
        attachments=attachments,
        quick_reply=body.quick_reply,
        reply_to=body.reply_to,
        referral=body.referral,
        is_unsupported=body.is_unsupported,
    )


@router.post("/customers/{igsid}/story-mentions", status_code=201)
def customer_mentions_business(
    customer: KnownCustomerDep, state: SandboxStateDep, body: EventCreate = EventCreate()
) -> dict[str, Any]:
    """The customer mentions the business in a story: a message with its CDN URL."""
    attachment = {"type": "story_mention", "payload": {"url": new_cdn_url()}}
    return written_event(state=state, customer=customer, options=body, attachments=[attachment])


@router.post("/customers/{igsid}/story-replies", status_code=201)
def customer_replies_to_story(
    body: StoryReplyCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer answers a story of the business: a message with `reply_to.story`."""
    story = {"url": new_cdn_url(), "id": body.story_id or new_media_id()}
    return written_event(
        state=state, customer=customer, options=body, text=body.text, reply_to={"story": story}
    )


@router.post("/customers/{igsid}/reactions", status_code=201)
def customer_reacts(
    body: ReactionCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer reacts to a message or removes the reaction (no window change)."""
    event = push_event(
        state=state,
        customer=customer,
        options=body,
        build=reaction_item,
        mid=body.mid,
        action=body.action,
        reaction=body.reaction,
        emoji=body.emoji,
    )
    return {"mid": body.mid, **event}


@router.post("/customers/{igsid}/unsend", status_code=201)
def customer_unsends(
    body: UnsendCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer unsends a message: `message.is_deleted` for its mid."""
    event = push_event(
        state=state, customer=customer, options=body, build=unsend_item, mid=body.mid
    )
    return {"mid": body.mid, **event}


@router.post("/customers/{igsid}/edits", status_code=201)
def customer_edits(
    body: EditCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer edits a message; edits of one mid are numbered 1, 2, 3… unless given."""
    num_edit = state.count_edit(mid=body.mid, num_edit=body.num_edit)
    event = push_event(
        state=state,
        customer=customer,
        options=body,
        build=edit_item,
        mid=body.mid,
        text=body.text,
        num_edit=num_edit,
    )
    return {"mid": body.mid, "num_edit": num_edit, **event}


@router.post("/customers/{igsid}/reads", status_code=201)
def customer_reads(
    body: ReadCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer sees the business's messages: `mid`, `watermark`, or the newest one sent."""
    mid = body.mid
    if mid is None and body.watermark is None:
        mid = state.last_sent_mid(customer.id)
        if mid is None:
            raise UnplayableEventError(
                f"the business has sent customer {customer.id} nothing to read: give a mid"
            )
    event = push_event(
        state=state,
        customer=customer,
        options=body,
        build=read_item,
        mid=mid,
        watermark=body.watermark,
    )
    return {"mid": mid, "watermark": body.watermark, **event}


@router.post("/customers/{igsid}/postbacks", status_code=201)
def customer_taps_button(
    body: PostbackCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer taps an icebreaker or button: consent and window, like a message."""
    return written_event(
        state=state,
        customer=customer,
        options=body,
        build=postback_item,
        title=body.title,
        # Meta leaves the payload out of postbacks delivered in standby.
        payload=None if body.standby else body.payload,
        referral=body.referral,
    )


@router.post("/customers/{igsid}/referrals", status_code=201)
def customer_follows_link(
    body: ReferralCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer opens an ig.me link into their existing thread: the window reopens."""
    return push_event(
        state=state,
        customer=customer,
        options=body,
        build=referral_item,
        opens_window=True,
        referral=body.model_dump(exclude=set(EventCreate.model_fields), exclude_none=True),
    )


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
            body=body.body,
        )
    )
    return [dataclasses.asdict(fault) for fault in state.faults()]


@router.get("/faults")
def list_faults(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Faults still waiting to fire."""
    return [dataclasses.asdict(fault) for fault in state.faults()]


@router.delete("/faults")
def clear_faults(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Drop every pending fault, and answer the calls a fault's delay is holding now."""
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


def unplayable_event_handler(request: Request, error: Exception) -> JSONResponse:
    """422 in the service's error shape."""
    return JSONResponse({"detail": str(error), "code": "validation_error"}, status_code=422)


EXCEPTION_HANDLERS = {
    UnknownCustomerError: unknown_customer_handler,
    CustomerExistsError: customer_exists_handler,
    UnplayableEventError: unplayable_event_handler,
}
