"""The slice of graph.instagram.com that insta-service calls: `/me`, profiles, the Send API.

Behaviour follows the shared reference `instagram/graph-api.md` (§4 Send API, §5 profiles, §8 `/me`,
§9 errors). What Meta does not document (exact wording of some errors) is a best guess.
"""

import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, BackgroundTasks, Body, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from app.sandbox.clock import now_ms
from app.sandbox.deps import BaseUrlDep, SandboxStateDep
from app.sandbox.ids import new_fbtrace_id, new_mid
from app.sandbox.message_nodes import MESSAGE_DEFAULT_FIELDS, message_node, record_message
from app.sandbox.state import (
    CallKind,
    Customer,
    GraphCall,
    SandboxAccount,
    SandboxState,
    SendCall,
)
from app.sandbox.threads import NEWEST_WITH_CONTENT
from app.sandbox.webhooks import delivery, echo_item
from app.services import window

GRAPH_VERSION = re.compile(r"v\d+\.\d+")
MILLISECOND = timedelta(milliseconds=1)

TEXT_LIMIT_BYTES = 1000  # bytes of UTF-8, not characters: ~500 Cyrillic letters, 250 emoji
MAX_QUICK_REPLIES = 13
MAX_IMAGES = 10
# Which payload key each attachment type needs (any one of them); like_heart has no payload.
ATTACHMENT_PAYLOAD_KEYS: dict[str, tuple[str, ...]] = {
    "image": ("url", "attachment_id"),
    "video": ("url", "attachment_id"),
    "audio": ("url", "attachment_id"),
    "file": ("url", "attachment_id"),
    "like_heart": (),
    "template": ("template_type",),
    "MEDIA_SHARE": ("id",),
}
# Meta re-hosts media it sends, so the echo carries its CDN URL, not the one the service gave.
REHOSTED_TYPES = {"image", "video", "audio", "file"}
SENDER_ACTIONS = {"typing_on", "typing_off", "mark_seen", "react", "unreact"}
MESSAGING_TYPES = {"RESPONSE", "UPDATE", "MESSAGE_TAG"}

ME_DEFAULT_FIELDS = ("user_id", "username")
PROFILE_FIELDS = (
    "name",
    "username",
    "profile_pic",
    "follower_count",
    "is_user_follow_business",
    "is_business_follow_user",
    "is_verified_user",
)

# Route templates → call kind, for the calls log and for targeting faults.
CALL_KIND_BY_ROUTE: dict[str, CallKind] = {
    "/{version}/me": "me",
    "/{version}/{object_id}": "profile",
    "/{version}/me/messages": "send",
    "/{version}/{account_id}/messages": "send",
    "/refresh_access_token": "refresh",
    "/{version}/me/subscribed_apps": "subscription",
    "/{version}/me/conversations": "conversations",
    "/{version}/{conversation}/messages": "conversations",
    "/{version}/{account_id}/subscribed_apps": "subscription",
}


class GraphError(Exception):
    """An error as Meta reports it; rendered in the Graph error envelope."""

    def __init__(
        self,
        *,
        message: str,
        code: int,
        error_type: str = "OAuthException",
        error_subcode: int | None = None,
        status_code: int = 400,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
        if error_subcode is not None:
            self.error["error_subcode"] = error_subcode
        self.error.update(extra or {})

    def response(self) -> JSONResponse:
        """The HTTP answer Meta would give."""
        return error_response(status_code=self.status_code, error=self.error)


def error_response(*, status_code: int, error: dict[str, Any]) -> JSONResponse:
    """`{"error": {...}}` with a fresh `fbtrace_id`, which every Meta error carries."""
    return JSONResponse({"error": {**error, "fbtrace_id": new_fbtrace_id()}}, status_code)


def invalid_token() -> GraphError:
    """Missing, malformed or unknown access token."""
    return GraphError(message="Invalid OAuth access token - Cannot parse access token", code=190)


def token_expired() -> GraphError:
    """A token past its 60 days (190/463)."""
    return GraphError(
        message="Error validating access token: Session has expired.", code=190, error_subcode=463
    )


def token_revoked() -> GraphError:
    """A token the user invalidated: password changed, app removed (190/460)."""
    return GraphError(
        message=(
            "Error validating access token: The session has been invalidated because the user "
            "changed their password or Facebook has changed the session for security reasons."
        ),
        code=190,
        error_subcode=460,
    )


def invalid_parameter(detail: str) -> GraphError:
    """A bad request parameter: Meta prefixes the code to the message."""
    return GraphError(message=f"(#100) {detail}", code=100)


def unsupported_request(method: str) -> GraphError:
    """A path or method the Graph API does not have."""
    return GraphError(
        message=f"Unsupported {method.lower()} request.",
        code=100,
        error_type="GraphMethodException",
    )


def object_not_found(*, method: str, object_id: str) -> GraphError:
    """An id no node answers to, e.g. an IG user id where an IGSID belongs."""
    return GraphError(
        message=(
            f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation"
        ),
        code=100,
        error_subcode=33,
        error_type="GraphMethodException",
    )


def rate_limited() -> GraphError:
    """Meta's answer past the Conversations API's 2 calls per second per account."""
    return GraphError(
        message="(#4) Application request limit reached", code=4, extra={"is_transient": True}
    )


def consent_required() -> GraphError:
    """Profile of someone who never messaged the business."""
    return GraphError(
        message="User consent is required to access user profile",
        code=230,
        error_type="IGApiException",
    )


def user_not_found() -> GraphError:
    """Send API recipient that is not an IGSID of this business."""
    return GraphError(
        message="The requested user cannot be found.",
        code=100,
        error_subcode=2534014,
        error_type="IGApiException",
    )


def outside_window() -> GraphError:
    """Send after the 24 h window (7 days with HUMAN_AGENT); Meta answers it with HTTP 403."""
    return GraphError(
        message="This message is sent outside of allowed window.",
        code=10,
        error_subcode=2534022,
        error_type="IGApiException",
        status_code=403,
    )


class GraphRoute(APIRoute):
    """Route class that puts every Graph call through latency, faults, token check and logging."""

    # Order: latency, injected fault (before the token check, so a fault can also play an
    # expired token), token, version, endpoint. Every answer, error or not, is logged.

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint_handler = super().get_route_handler()
        route_kind = CALL_KIND_BY_ROUTE.get(self.path, "other")

        async def handle_graph_call(request: Request) -> Response:
            state: SandboxState = request.app.state.sandbox
            kind = call_kind(route_kind, request=request, state=state)
            # Logged on arrival, so a call whose client timed out still counts.
            call = arrived(request=request, kind=kind, state=state)
            generation = state.generation
            if state.latency_ms:
                await anyio.sleep(state.latency_ms / 1000)
            fault = state.take_fault(kind, account_id=call.account_id)
            if fault is not None and fault.delay_seconds:
                await hold(state, fault.delay_seconds)
            if fault is not None and fault.body is not None:
                response: Response = JSONResponse(fault.body, status_code=fault.status_code)
            elif fault is not None and fault.error is not None:
                response = error_response(status_code=fault.status_code, error=fault.error)
            else:
                try:
                    request.state.account = check_token(request=request, state=state)
                    check_version(request)
                    if kind in RATE_LIMITED_KINDS and not state.conversations_call_allowed():
                        raise rate_limited()
                    response = await endpoint_handler(request)
                except GraphError as error:
                    response = error.response()
                except RequestValidationError:
                    # FastAPI could not parse the request (e.g. a body that is not JSON).
                    response = invalid_parameter("Invalid parameter").response()
            call.status_code = response.status_code
            # A call held across a reset belongs to the world before it: not logged again.
            if kind == "send" and state.generation == generation:
                await record_send(request=request, response=response, state=state)
            return response

        return handle_graph_call


# The Conversations API's calls: 2 per second per account.
RATE_LIMITED_KINDS = frozenset({"conversations", "message"})


def call_kind(route_kind: CallKind, *, request: Request, state: SandboxState) -> CallKind:
    """What a call is: `GET /{v}/{id}` reads a profile, or a message (a mid), or a
    conversation (a conversation id)."""
    if route_kind == "profile" and request.method == "GET":
        object_id = request.path_params.get("object_id", "")
        if state.threads.find(object_id) is not None:
            return "message"
        if state.threads.customer_of(object_id, account_id=state.config.account_id):
            return "conversations"
    return route_kind


async def hold(state: SandboxState, seconds: float) -> None:
    """Wait `seconds` (a hanging Meta), or less if the faults are cleared meanwhile."""
    released = state.released
    deadline = anyio.current_time() + seconds
    while state.released == released:
        left = deadline - anyio.current_time()
        if left <= 0:
            return
        await anyio.sleep(min(left, 0.02))


def presented_token(request: Request) -> str:
    """The token a call carries: `Authorization: Bearer` (or Meta's `?access_token=`)."""
    scheme, _, header_token = request.headers.get("authorization", "").partition(" ")
    token = header_token.strip() if scheme.lower() in ("bearer", "oauth") else ""
    return token or request.query_params.get("access_token", "")


def check_token(*, request: Request, state: SandboxState) -> SandboxAccount:
    """The account of a token the sandbox issued (an account's first one, or a refresh of
    it) that is neither expired nor revoked."""
    token = presented_token(request)
    account = state.account_of_token(token) if token else None
    problem = account.business.check_token(token) if account else "unknown"
    if problem == "expired":
        raise token_expired()
    if problem == "revoked":
        raise token_revoked()
    if problem is not None or account is None:
        raise invalid_token()
    return account


def calling_account(request: Request) -> SandboxAccount:
    """The account whose token the call carries (checked by the route class)."""
    account: SandboxAccount = request.state.account
    return account


def check_version(request: Request) -> None:
    """Graph paths start with a version such as `v22.0`."""
    version = request.path_params.get("version")
    if version is not None and not GRAPH_VERSION.fullmatch(version):
        raise unsupported_request(request.method)


def arrived(*, request: Request, kind: CallKind, state: SandboxState) -> GraphCall:
    """Log a Graph call as it arrives (never the access token)."""
    query = {key: value for key, value in request.query_params.items() if key != "access_token"}
    token = presented_token(request)
    account = state.account_of_token(token) if token else None
    call = GraphCall(
        method=request.method,
        path=request.url.path,
        query=query,
        kind=kind,
        at_ms=now_ms(),
        account_id=account.id if account else None,
    )
    state.record_call(call)
    return call


async def record_send(*, request: Request, response: Response, state: SandboxState) -> None:
    """Log a Send API call's body and answer."""
    state.record_send(
        SendCall(
            body=parse_json(await request.body()),
            status_code=response.status_code,
            response=parse_json(bytes(response.body)),
            at_ms=now_ms(),
        )
    )


def parse_json(raw: bytes) -> Any:
    """JSON when it parses, else the text as received (what a broken client sent)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def requested_fields(fields: str | None) -> list[str]:
    """The `fields=a,b` query parameter as a list."""
    return [field.strip() for field in (fields or "").split(",") if field.strip()]


def pick_fields(node: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The requested fields of a node, in request order."""
    # Meta rejects unknown fields with code 100; the sandbox leaves them out instead, so a
    # real field it does not model never breaks the service.
    return {field: node[field] for field in fields if field in node}


router = APIRouter(route_class=GraphRoute)


@router.get("/{version}/me")
def read_me(request: Request, fields: str | None = None) -> dict[str, Any]:
    """The token's business account: `user_id` is the IG_ID webhooks carry, `id` is
    app-scoped."""
    me = calling_account(request)
    account = {
        "user_id": me.id,
        "username": me.username,
        "name": me.name,
        "account_type": "BUSINESS",
        "profile_picture_url": f"https://scontent.cdninstagram.com/v/t51.2885-19/{me.id}_n.jpg",
    }
    node = pick_fields(account, requested_fields(fields) or list(ME_DEFAULT_FIELDS))
    # Every Graph node answers with its `id`; on `/me` it is NOT the IG_ID.
    return {**node, "id": me.app_scoped_id}


@router.post("/{version}/me/messages")
def send_via_me(
    request: Request,
    state: SandboxStateDep,
    background_tasks: BackgroundTasks,
    base_url: BaseUrlDep,
    body: Annotated[Any, Body()] = None,
) -> dict[str, Any]:
    """Send API through `/me/messages`."""
    return send(
        state=state,
        account=calling_account(request),
        body=body,
        background_tasks=background_tasks,
        base_url=base_url,
    )


@router.post("/{version}/{account_id}/messages")
def send_via_account_id(
    account_id: str,
    request: Request,
    state: SandboxStateDep,
    background_tasks: BackgroundTasks,
    base_url: BaseUrlDep,
    body: Annotated[Any, Body()] = None,
) -> dict[str, Any]:
    """Send API through `/{IG_ID}/messages`; any other id (e.g. the app-scoped one, or
    another account's) fails."""
    account = calling_account(request)
    if account_id != account.id:
        raise object_not_found(method="post", object_id=account_id)
    return send(
        state=state,
        account=account,
        body=body,
        background_tasks=background_tasks,
        base_url=base_url,
    )


@router.get("/{version}/{object_id}")
def read_node(
    version: str,
    object_id: str,
    request: Request,
    state: SandboxStateDep,
    base_url: BaseUrlDep,
    fields: str | None = None,
) -> dict[str, Any]:
    """`GET /{v}/{id}`: a conversation or a message by its mid (the Conversations API, with
    fresh attachment URLs; as if deleted when older than its conversation's 20 newest), else
    a profile."""
    customer = state.threads.customer_of(object_id, account_id=state.config.account_id)
    if customer is not None:
        # Imported here: app/sandbox/conversations.py builds on this module's routes.
        from app.sandbox.conversations import conversation_node

        return conversation_node(state, customer, fields=fields, base_url=base_url, version=version)
    found = state.threads.find(object_id)
    if found is None:
        return read_profile(object_id, calling_account(request), state, fields)
    _, message, newer = found
    if newer >= NEWEST_WITH_CONTENT:
        raise object_not_found(method="get", object_id=object_id)
    wanted = requested_fields(fields) or list(MESSAGE_DEFAULT_FIELDS)
    return message_node(state, message, fields=wanted, with_content=True, base_url=base_url)


def read_profile(
    object_id: str, account: SandboxAccount, state: SandboxState, fields: str | None
) -> dict[str, Any]:
    """User Profile API: a customer's profile, once they have messaged the business (an
    IGSID exists only for the account it writes to)."""
    customer = state.get_customer(object_id)
    if customer is None or customer.account_id != account.id:
        raise object_not_found(method="get", object_id=object_id)
    if not customer.consented:
        raise consent_required()
    profile = {field: getattr(customer, field) for field in PROFILE_FIELDS}
    node = pick_fields(profile, requested_fields(fields) or list(PROFILE_FIELDS))
    return {**node, "id": customer.id}


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
def unsupported(request: Request, path: str) -> None:
    """Anything else the Graph API would not answer here."""
    raise unsupported_request(request.method)


# The Send API


@dataclass(frozen=True)
class SendRequest:
    """A validated Send API body: either a message or a sender action."""

    recipient_id: str
    message: dict[str, Any] | None
    sender_action: str | None
    tag: str | None


def send(
    *,
    state: SandboxState,
    account: SandboxAccount,
    body: Any,
    background_tasks: BackgroundTasks,
    base_url: str,
) -> dict[str, Any]:
    """Validate, check recipient (one of the account's customers) and window, answer like
    Meta and schedule the echo (its entry is the account's); the conversation remembers the
    message (Meta re-hosts its media on its CDN)."""
    request = parse_send_request(body)
    customer = state.get_customer(request.recipient_id)
    if customer is None or customer.account_id != account.id:
        raise user_not_found()
    check_window(customer=customer, tag=request.tag)
    if request.message is None:
        # Sender actions (typing, seen, reactions) are answered without a mid and not echoed.
        return {"recipient_id": customer.id}

    mid = new_mid(account_id=account.id)
    attachments = echoed_attachments(request.message, state=state, base_url=base_url)
    timestamp_ms = now_ms()
    echo = echo_delivery(
        account_id=account.id,
        customer_id=customer.id,
        mid=mid,
        text=request.message.get("text"),
        attachments=attachments,
        timestamp_ms=timestamp_ms,
    )
    record_message(
        state,
        customer_id=customer.id,
        mid=mid,
        created_ms=timestamp_ms,
        outbound=True,
        text=request.message.get("text"),
        attachments=attachments,
    )
    if state.echo_mode == "before":
        state.deliver_webhook(payload=echo)
    elif state.echo_mode == "after":
        # Runs once the response has been sent, which is Meta's usual order.
        background_tasks.add_task(state.deliver_webhook, payload=echo)
    return {"recipient_id": customer.id, "message_id": mid}


def parse_send_request(body: Any) -> SendRequest:
    """Check a Send API body the way Meta does before looking at the recipient."""
    if not isinstance(body, dict) or "recipient" not in body:
        raise invalid_parameter("The parameter recipient is required")
    recipient = body["recipient"]
    recipient_id = recipient.get("id") if isinstance(recipient, dict) else None
    if isinstance(recipient_id, int) and not isinstance(recipient_id, bool):
        recipient_id = str(recipient_id)
    if not isinstance(recipient_id, str) or not recipient_id:
        raise invalid_parameter("param recipient must be non-empty.")

    messaging_type = body.get("messaging_type")
    if messaging_type is not None and messaging_type not in MESSAGING_TYPES:
        raise invalid_parameter(f"Param messaging_type must be one of {sorted(MESSAGING_TYPES)}")
    tag = body.get("tag")
    if tag is not None and tag != window.HUMAN_AGENT_TAG:
        raise invalid_parameter(f"Param tag must be {window.HUMAN_AGENT_TAG} on Instagram")

    message = body.get("message")
    sender_action = body.get("sender_action")
    if (message is None) == (sender_action is None):
        raise invalid_parameter("Exactly one of message or sender_action must be provided")
    if sender_action is not None:
        check_sender_action(action=sender_action, payload=body.get("payload"))
    else:
        check_message(message)
    return SendRequest(
        recipient_id=recipient_id, message=message, sender_action=sender_action, tag=tag
    )


def check_message(message: Any) -> None:
    """Exactly one content key, text within the byte limit, valid attachments and quick replies."""
    if not isinstance(message, dict):
        raise invalid_parameter("param message must be an object")
    contents = [key for key in ("text", "attachment", "attachments") if key in message]
    if len(contents) != 1:
        raise invalid_parameter("message must contain exactly one of text, attachment, attachments")
    if "text" in message:
        text = message["text"]
        if not isinstance(text, str) or not text:
            raise invalid_parameter("param message[text] must be a non-empty string")
        if len(text.encode()) > TEXT_LIMIT_BYTES:
            raise invalid_parameter(
                f"Length of param message[text] must be less than or equal to {TEXT_LIMIT_BYTES}"
            )
    if "attachment" in message:
        check_attachment(message["attachment"], param="message[attachment]")
    if "attachments" in message:
        attachments = message["attachments"]
        if not isinstance(attachments, list) or not 1 <= len(attachments) <= MAX_IMAGES:
            raise invalid_parameter(f"param message[attachments] must hold 1 to {MAX_IMAGES} items")
        for index, attachment in enumerate(attachments):
            param = f"message[attachments][{index}]"
            check_attachment(attachment, param=param)
            if attachment["type"] != "image":
                raise invalid_parameter(f"param {param}[type] must be image")
    quick_replies = message.get("quick_replies")
    if quick_replies is not None and (
        not isinstance(quick_replies, list) or len(quick_replies) > MAX_QUICK_REPLIES
    ):
        raise invalid_parameter(
            f"param message[quick_replies] must be a list of at most {MAX_QUICK_REPLIES} items"
        )


def check_attachment(attachment: Any, *, param: str) -> None:
    """A known type with the payload key that type needs."""
    if not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_PAYLOAD_KEYS:
        raise invalid_parameter(
            f"param {param}[type] must be one of {sorted(ATTACHMENT_PAYLOAD_KEYS)}"
        )
    needed = ATTACHMENT_PAYLOAD_KEYS[attachment["type"]]
    payload = attachment.get("payload")
    if needed and not (isinstance(payload, dict) and any(payload.get(key) for key in needed)):
        raise invalid_parameter(f"param {param}[payload] must have one of {list(needed)}")


def check_sender_action(*, action: Any, payload: Any) -> None:
    """A known action; reactions name the message they apply to."""
    if action not in SENDER_ACTIONS:
        raise invalid_parameter(f"param sender_action must be one of {sorted(SENDER_ACTIONS)}")
    if action in ("react", "unreact"):
        if not isinstance(payload, dict) or not payload.get("message_id"):
            raise invalid_parameter("param payload[message_id] is required")
        if action == "react" and not payload.get("reaction"):
            raise invalid_parameter("param payload[reaction] is required")


def check_window(*, customer: Customer, tag: str | None) -> None:
    """Meta's messaging window (app/services/window.py), from what Meta knows: a customer who
    never wrote has no window open."""
    if customer.last_inbound_ms is None:
        raise outside_window()
    if now_ms() - customer.last_inbound_ms > window.length(tag) // MILLISECOND:
        raise outside_window()


def echo_delivery(
    *,
    account_id: str,
    customer_id: str,
    mid: str,
    text: str | None,
    attachments: list[dict[str, Any]] | None,
    timestamp_ms: int,
) -> dict[str, Any]:
    """The webhook Meta sends back for a message the business sent (`is_echo`)."""
    item = echo_item(
        account_id=account_id,
        customer_id=customer_id,
        mid=mid,
        timestamp_ms=timestamp_ms,
        text=text,
        attachments=attachments,
    )
    return delivery(account_id=account_id, items=[item], time_ms=timestamp_ms)


def echoed_attachments(
    message: dict[str, Any], *, state: SandboxState, base_url: str
) -> list[dict[str, Any]] | None:
    """How the attachments the business sent look in the echo: one `attachment` in the
    request comes back as an `attachments` list; media re-hosted on the (sandbox's) CDN."""
    if "attachment" in message:
        sent = [message["attachment"]]
    elif "attachments" in message:
        sent = list(message["attachments"])
    else:
        return None
    return [
        {
            "type": item["type"],
            "payload": {"url": state.threads.new_asset(item["type"], base_url=base_url)},
        }
        if item["type"] in REHOSTED_TYPES
        else item
        for item in sent
    ]
