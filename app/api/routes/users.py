"""`/user`: a user's Instagram profile (the original endpoint)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import UserServiceDep
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.users import SeedUserRead

router = APIRouter(tags=["original API"])


@router.get(
    "/user",
    summary="A user's profile",
    deprecated=True,
    response_model=SeedUserRead,
    responses=error_responses(401, 404, 409, 422, 429, 502, 503, 504),
)
@router.get("/user/", include_in_schema=False, response_model=SeedUserRead, deprecated=True)
def get_user(
    service: UserServiceDep,
    user_id: Annotated[
        str, Query(pattern=IG_ID_PATTERN, description="The IGSID.", examples=["1667654223855126"])
    ],
) -> SeedUserRead:
    """The profile of `user_id` from the cache while fresh (PROFILE_CACHE_TTL_SECONDS), else
    from the Instagram Graph API, then cached. 404 when Instagram has no profile for the
    business (unknown id, or the user never messaged the business).

    Deprecated: `GET /api/v1/users/{user_id}` also tells the profile status."""
    return SeedUserRead.model_validate(service.get_profile(user_id))
