"""The business account's Graph routes — token refresh and webhook subscription — and the
control routes that age, expire and revoke its tokens.

Graph behaviour follows the shared reference (`instagram/graph-api.md` §7, §8). What Meta does
not document is a guess, written down here: a refresh of a token younger than 24 hours answers
code 100; a POST to `subscribed_apps` replaces the list of fields; GET answers one app entry.
"""

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.sandbox.business import TokenTooYoungError, UnknownTokenError
from app.sandbox.control import PREFIX
from app.sandbox.deps import SandboxStateDep
from app.sandbox.graph import (
    GraphRoute,
    calling_account,
    invalid_parameter,
    object_not_found,
    presented_token,
)
from app.sandbox.ids import new_account_id
from app.sandbox.state import AccountExistsError
from app.services.subscription import WEBHOOK_FIELDS as SERVICE_FIELDS

SANDBOX_APP_ID = "1000000000000001"
SANDBOX_APP_NAME = "insta-service sandbox app"
PERMISSIONS = "instagram_business_basic,instagram_business_manage_messages"
# The webhook fields an Instagram-Login app can subscribe an account to: those the service
# handles, and more.
WEBHOOK_FIELDS = (
    *SERVICE_FIELDS,
    "messaging_optins",
    "messaging_handover",
    "standby",
    "comments",
    "live_comments",
    "mentions",
    "story_insights",
)

graph_router = APIRouter(route_class=GraphRoute)


@graph_router.get("/refresh_access_token")
def refresh_access_token(
    request: Request, state: SandboxStateDep, grant_type: str | None = None
) -> dict[str, Any]:
    """`ig_refresh_token`: a new 60-day token for a valid one at least 24 hours old."""
    if grant_type != "ig_refresh_token":
        raise invalid_parameter("grant_type must be ig_refresh_token")
    try:
        fresh = calling_account(request).business.refresh(presented_token(request))
    except TokenTooYoungError:
        raise invalid_parameter(
            "The access token cannot be refreshed: it was issued less than 24 hours ago"
        ) from None
    return {
        "access_token": fresh.value,
        "token_type": "bearer",
        "expires_in": (fresh.expires_at_ms - fresh.issued_at_ms) // 1000,
        "permissions": PERMISSIONS,
    }


def _check_account(*, account_id: str, request: Request, method: str) -> None:
    if account_id != calling_account(request).id:
        raise object_not_found(method=method, object_id=account_id)


@graph_router.post("/{version}/me/subscribed_apps")
def subscribe(request: Request, subscribed_fields: str | None = None) -> dict[str, Any]:
    """Subscribe the account to webhook fields (`?subscribed_fields=a,b`)."""
    fields = [field.strip() for field in (subscribed_fields or "").split(",") if field.strip()]
    if not fields:
        raise invalid_parameter("The parameter subscribed_fields is required")
    unknown = [field for field in fields if field not in WEBHOOK_FIELDS]
    if unknown:
        raise invalid_parameter(
            f"Param subscribed_fields must be one of {{{', '.join(WEBHOOK_FIELDS)}}} - got "
            f'"{unknown[0]}"'
        )
    calling_account(request).business.subscribe(fields)
    return {"success": True}


@graph_router.get("/{version}/me/subscribed_apps")
def read_subscription(request: Request) -> dict[str, Any]:
    """The app's subscription for the account: `{"data": [{"subscribed_fields": […], …}]}`."""
    fields = calling_account(request).business.subscribed_fields()
    if not fields:
        return {"data": []}
    return {"data": [{"subscribed_fields": fields, "id": SANDBOX_APP_ID, "name": SANDBOX_APP_NAME}]}


@graph_router.delete("/{version}/me/subscribed_apps")
def unsubscribe(request: Request) -> dict[str, Any]:
    """Stop webhook delivery for the account."""
    calling_account(request).business.unsubscribe()
    return {"success": True}


@graph_router.api_route(
    "/{version}/{account_id}/subscribed_apps", methods=["GET", "POST", "DELETE"]
)
def subscription_by_account_id(
    account_id: str, request: Request, subscribed_fields: str | None = None
) -> dict[str, Any]:
    """`/{IG_ID}/subscribed_apps` works like `/me/subscribed_apps`; other ids do not exist."""
    _check_account(account_id=account_id, request=request, method=request.method)
    if request.method == "POST":
        return subscribe(request, subscribed_fields)
    if request.method == "DELETE":
        return unsubscribe(request)
    return read_subscription(request)


class TokenUpdate(BaseModel):
    """Change one token (`token`) or every token of an account: its age, its expiry, its
    revocation."""

    token: str | None = Field(default=None, description="Default: every token issued")
    account_id: str | None = Field(
        default=None,
        description="Without `token`: this account's tokens (default: the configured account's)",
    )
    age_seconds: float | None = Field(default=None, ge=0, description="Issued this long ago")
    expires_in_seconds: float | None = Field(
        default=None, description="Expires this long from now (negative: already expired)"
    )
    revoked: bool | None = Field(
        default=None, description="Revoked tokens answer 190 to every Graph call"
    )


control_router = APIRouter(prefix=PREFIX, tags=["sandbox control"])


@control_router.get("/tokens")
def list_tokens(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Every token issued (the configured one, then refreshes), with age, expiry, revocation."""
    return [dataclasses.asdict(token) for token in state.business.tokens()]


@control_router.put("/tokens")
def update_tokens(body: TokenUpdate, state: SandboxStateDep) -> Any:
    """Age, expire or revoke a token (or all of them)."""
    account = (
        state.account_of_token(body.token) if body.token else state.account(body.account_id or "")
    )
    if account is None:
        return JSONResponse({"detail": "no such token", "code": "not_found"}, status_code=404)
    try:
        tokens = account.business.update_tokens(
            value=body.token,
            age_seconds=body.age_seconds,
            expires_in_seconds=body.expires_in_seconds,
            revoked=body.revoked,
        )
    except UnknownTokenError:
        return JSONResponse({"detail": "no such token", "code": "not_found"}, status_code=404)
    return [dataclasses.asdict(token) for token in tokens]


@control_router.get("/subscription")
def read_subscribed_fields(state: SandboxStateDep) -> dict[str, Any]:
    """The webhook fields the configured account is subscribed to (no token needed)."""
    return {"subscribed_fields": state.business.subscribed_fields()}


class AccountCreate(BaseModel):
    """Another business account for the sandbox to play (left out: generated)."""

    id: str | None = Field(default=None, pattern=r"^\d+$", description="IG_ID")
    username: str | None = None
    name: str | None = None


@control_router.post("/accounts", status_code=201)
def create_account(body: AccountCreate, state: SandboxStateDep) -> Any:
    """A business account with a token of its own (in the answer: configure the service with
    it, or POST it to the service's /api/v1/accounts)."""
    account_id = body.id or new_account_id()
    try:
        account = state.add_account(
            account_id=account_id,
            username=body.username or f"business_{account_id[-4:]}",
            name=body.name or f"Business {account_id[-4:]}",
        )
    except AccountExistsError:
        return JSONResponse(
            {"detail": "an account with this IG_ID exists", "code": "conflict"}, status_code=409
        )
    return account.describe()


@control_router.get("/accounts")
def list_accounts(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Every business account the sandbox plays, the configured one first."""
    return [account.describe() for account in state.accounts()]
