"""/api/v1/accounts: the business accounts the service serves, each with its own token."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from app.api.deps import AccountServiceDep
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.v1.accounts import AccountCreate, AccountList, AccountRead

router = APIRouter(prefix="/accounts", tags=["accounts"])

AccountId = Annotated[
    str,
    Path(
        pattern=IG_ID_PATTERN,
        description="The account's IG_ID (`/me` → `user_id`).",
        examples=["17841400123456789"],
    ),
]


@router.post(
    "",
    summary="Add an account (or replace its token)",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountRead,
    responses={
        200: {"model": AccountRead, "description": "The account existed: its token is replaced."},
        **error_responses(400, 401, 413, 422, 429, 502, 503, 504),
    },
)
def add_account(service: AccountServiceDep, body: AccountCreate, response: Response) -> Any:
    """Ask Instagram whose token this is (`GET /me?fields=user_id,username`), store the
    account with its token (sealed), apply the webhook entries that waited for it, and
    subscribe it to the webhook fields the service handles (`POST /me/subscribed_apps`).
    201 for a new account; 200 when it existed (its token replaced, never a second row).
    A token Instagram refuses is 422 `instagram_token_invalid`."""
    account, created = service.add(access_token=body.access_token.get_secret_value())
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return account


@router.get(
    "",
    summary="List accounts",
    response_model=AccountList,
    responses=error_responses(401, 422, 503),
)
def list_accounts(service: AccountServiceDep) -> Any:
    """Every account (removed ones too), oldest first: status, token state, subscribed
    webhook fields, last webhook received and conversation count."""
    return {"data": service.listed()}


@router.get(
    "/{ig_id}",
    summary="Read an account",
    response_model=AccountRead,
    responses=error_responses(401, 404, 422, 503),
)
def get_account(service: AccountServiceDep, ig_id: AccountId) -> Any:
    """One account; 404 `account_not_found`."""
    return service.get(ig_id)


@router.delete(
    "/{ig_id}",
    summary="Remove an account",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422, 503),
)
def remove_account(service: AccountServiceDep, ig_id: AccountId) -> Response:
    """Stop using the account: no sends, profile fetches or token refreshes for it, its
    token dropped; its stored conversations stay readable. Webhook entries that arrive for
    it afterwards are kept and applied if it is added again. 404 `account_not_found`."""
    service.remove(account_id=ig_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
