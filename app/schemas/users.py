"""A user's profile as the original `/user` endpoint shows it (README sample 5)."""

from pydantic import BaseModel, ConfigDict, Field


class SeedUserRead(BaseModel):
    """The Instagram profile of a user, from the cache or the Graph API."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "1667654223855126",
                    "username": "test_user6023",
                    "name": "Test Userr",
                    "profile_pic": None,
                    "follower_count": 0,
                    "is_user_follow_business": True,
                    "is_business_follow_user": False,
                }
            ]
        },
    )

    id: str = Field(description="The IGSID, as a string.")
    username: str | None
    name: str | None
    profile_pic: str | None
    follower_count: int | None
    is_user_follow_business: bool | None
    is_business_follow_user: bool | None
