"""/api/v1/users/{user_id}: a cached Instagram profile."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.deps import UserServiceDep
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.v1 import UserRead

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/{user_id}",
    summary="Get a user's profile",
    response_model=UserRead,
    responses=error_responses(401, 404, 409, 422, 429, 502, 503, 504),
)
def get_user(
    service: UserServiceDep,
    user_id: Annotated[
        str, Path(pattern=IG_ID_PATTERN, description="The IGSID.", examples=["1187429836452190"])
    ],
    refresh: Annotated[bool, Query(description="Fetch from Instagram now.")] = False,
) -> UserRead:
    """The cached profile with its `profile_status` and `fetched_at` (the background fetcher
    keeps it fresh); `refresh=true` fetches it from the Instagram Graph API now. A user the
    service has never seen is fetched. 404 when Instagram has no profile for the business."""
    return UserRead.model_validate(service.profile(user_id, refresh=refresh))
