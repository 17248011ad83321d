"""`/_sandbox/customers/{customer_id}/...` and `/_sandbox/webhooks`: customers acting like
Instagram users (write, react, unsend, edit, read, tap buttons, follow links), each a signed
webhook to the service; and any delivery body pushed as is."""

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from app.sandbox.clock import now_ms
from app.sandbox.control.customers import KnownCustomerDep
from app.sandbox.control.errors import UnplayableEventError
from app.sandbox.deps import BaseUrlDep, SandboxStateDep
from app.sandbox.ids import new_cdn_url, new_media_id, new_mid
from app.sandbox.message_nodes import record_message
from app.sandbox.state import Customer, SandboxState
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

ReactionName = Literal["love", "like", "laugh", "wow", "sad", "angry", "other"]


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
        state.record_inbound(customer_id=customer.id, timestamp_ms=timestamp_ms)
    account_id = customer.account_id or state.config.account_id
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
    mid = new_mid(account_id=customer.account_id or state.config.account_id)
    event = push_event(
        state=state,
        customer=customer,
        options=options,
        build=build,
        opens_window=True,
        mid=mid,
        **content,
    )
    # The conversation remembers it (the Conversations API), delivered or not.
    record_message(
        state,
        customer_id=customer.id,
        mid=mid,
        created_ms=_event_time(event),
        outbound=False,
        text=content.get("text") or content.get("title"),
        attachments=content.get("attachments"),
    )
    return {"mid": mid, **event}


def _event_time(event: dict[str, Any]) -> int:
    """The timestamp of the (one) item of an event's delivery."""
    return int(event["payload"]["entry"][0][_items_key(event)][0]["timestamp"])


def _items_key(event: dict[str, Any]) -> str:
    return "standby" if "standby" in event["payload"]["entry"][0] else "messaging"


router = APIRouter()


@router.post("/customers/{customer_id}/messages", status_code=201)
def customer_writes(
    body: CustomerMessageCreate,
    customer: KnownCustomerDep,
    state: SandboxStateDep,
    base_url: BaseUrlDep,
) -> dict[str, Any]:
    """The customer messages the business: window opens, webhook goes to the service. An
    attachment without payload gets a file on the sandbox's CDN."""
    attachments = None
    if body.attachments:
        attachments = [
            {
                "type": item.type,
                "payload": item.payload
                or {"url": state.threads.new_asset(item.type, base_url=base_url)},
            }
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


@router.post("/customers/{customer_id}/story-mentions", status_code=201)
def customer_mentions_business(
    customer: KnownCustomerDep,
    state: SandboxStateDep,
    base_url: BaseUrlDep,
    body: EventCreate = EventCreate(),
) -> dict[str, Any]:
    """The customer mentions the business in a story: a message with its CDN URL."""
    url = state.threads.new_asset("story_mention", base_url=base_url)
    attachment = {"type": "story_mention", "payload": {"url": url}}
    return written_event(state=state, customer=customer, options=body, attachments=[attachment])


@router.post("/customers/{customer_id}/story-replies", status_code=201)
def customer_replies_to_story(
    body: StoryReplyCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer answers a story of the business: a message with `reply_to.story`."""
    story = {"url": new_cdn_url(), "id": body.story_id or new_media_id()}
    return written_event(
        state=state, customer=customer, options=body, text=body.text, reply_to={"story": story}
    )


@router.post("/customers/{customer_id}/reactions", status_code=201)
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


@router.post("/customers/{customer_id}/unsend", status_code=201)
def customer_unsends(
    body: UnsendCreate, customer: KnownCustomerDep, state: SandboxStateDep
) -> dict[str, Any]:
    """The customer unsends a message: `message.is_deleted` for its mid (and it is gone
    from the conversation)."""
    event = push_event(
        state=state, customer=customer, options=body, build=unsend_item, mid=body.mid
    )
    state.threads.remove(body.mid)
    return {"mid": body.mid, **event}


@router.post("/customers/{customer_id}/edits", status_code=201)
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


@router.post("/customers/{customer_id}/reads", status_code=201)
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


@router.post("/customers/{customer_id}/postbacks", status_code=201)
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


@router.post("/customers/{customer_id}/referrals", status_code=201)
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
