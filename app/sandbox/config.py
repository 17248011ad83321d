"""Sandbox settings, read from the same environment variables (and `.env`) as the service."""

from typing import Literal

from pydantic import AliasChoices, AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# When the echo webhook of a Send API call is delivered, relative to the API answer:
# "after" is what Meta usually does, "before" happens too (webhooks race the HTTP answer),
# "off" lets a test deliver echoes itself.
EchoMode = Literal["after", "before", "off"]


class SandboxConfig(BaseSettings):
    """Who the fake Graph API says the business is and where it delivers webhooks."""

    # Credentials and the account id read the service's variable names (`INSTAGRAM_*`) so one
    # `.env` wires both processes together; sandbox-only knobs read `SANDBOX_<FIELD>`.

    model_config = SettingsConfigDict(
        env_file=".env", env_prefix="SANDBOX_", extra="ignore", populate_by_name=True
    )

    access_token: SecretStr = Field(
        default=SecretStr("sandbox-user-token"),
        validation_alias=AliasChoices("INSTAGRAM_USER_TOKEN"),
        description="The only token the Graph routes accept.",
    )
    app_secret: SecretStr = Field(
        default=SecretStr("sandbox-app-secret"),
        validation_alias=AliasChoices("INSTAGRAM_APP_SECRET"),
        description="Key of the X-Hub-Signature-256 HMAC on webhook deliveries.",
    )
    account_id: str = Field(
        default="17841400000000001",
        validation_alias=AliasChoices("INSTAGRAM_ACCOUNT_ID"),
        pattern=r"^\d+$",
        description="The business's IG_ID: `/me` user_id, webhook entry.id.",
    )
    account_username: str = "sandbox_business"
    account_name: str = "Sandbox Business"
    app_scoped_id: str = Field(
        default="9876543210123456",
        pattern=r"^\d+$",
        description="What `/me` returns as `id`: NOT the IG_ID webhooks carry.",
    )
    webhook_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8000/webhook"),
        description="The service's webhook endpoint.",
    )
    latency_ms: int = Field(default=0, ge=0, description="Delay before every Graph answer.")
    echo_mode: EchoMode = "after"
    conversations_rate_limit: bool = Field(
        default=True,
        description="Answer Conversations API calls beyond 2 per second with code 4, as Meta.",
    )
    public_url: AnyHttpUrl | None = Field(
        default=None,
        description="Where the service reaches the sandbox (its CDN URLs); default: the "
        "address each request came to.",
    )
