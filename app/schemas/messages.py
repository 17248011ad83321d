"""History as the original `/messages` endpoint shows it (README sample 4)."""

from pydantic import BaseModel, ConfigDict


class SeedMessageRead(BaseModel):
    """One message: who wrote it to whom, and its text (or a placeholder for media)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sender_username": "test_user6023",
                    "recipient_username": "test_appstestapps",
                    "text": "test message webhook",
                }
            ]
        }
    )

    sender_username: str
    recipient_username: str
    text: str
