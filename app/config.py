"""All settings, read from the environment and `.env` (names kept from the original README)."""

import base64
import binascii
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

DEFAULT_SQLITE_PATH = "insta_service.db"
FERNET_KEY_BYTES = 32


class Settings(BaseSettings):
    """Service configuration; every field maps to the upper-case environment variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    # Database. DATABASE_URL wins; else the DB_* parts; else an embedded SQLite file.
    database_url: str | None = None
    db_driver: str = "postgresql+psycopg2"
    db_user: str | None = None
    db_password: SecretStr | None = None
    db_host: str | None = None
    db_port: int | None = None
    db_name: str | None = None
    sqlite_path: str = DEFAULT_SQLITE_PATH
    db_pool_size: int = Field(default=50, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    db_connect_timeout: int = Field(default=5, ge=1)

    # Instagram (Meta) app and account.
    instagram_app_secret: SecretStr | None = None
    instagram_user_token: SecretStr | None = None
    instagram_webhook_token: SecretStr | None = None
    instagram_account_id: str | None = None
    instagram_account_scoped_id: str | None = None
    instagram_graph_url: str = "https://graph.instagram.com"
    instagram_api_version: str = "v25.0"
    instagram_send_message_url: str | None = None
    instagram_connect_timeout: float = Field(default=3.05, gt=0)
    instagram_read_timeout: float = Field(default=10.0, gt=0)
    instagram_get_retries: int = Field(default=3, ge=0)
    instagram_pool_size: int = Field(default=64, ge=1)
    # At most this many Graph calls at once per process; a call that finds no free slot
    # within INSTAGRAM_QUEUE_TIMEOUT answers 503 instagram_busy, so a hanging Meta can never
    # take every worker thread (webhooks and reads keep theirs).
    instagram_max_concurrency: int = Field(default=64, ge=1)
    instagram_queue_timeout: float = Field(default=1.0, ge=0)
    # At most this many of those calls for one business account: a slow or rate-limited
    # account waits on its own slots and never takes every shared one.
    instagram_account_max_concurrency: int = Field(default=16, ge=1)

    # The service itself. Without API_KEY the service refuses to start unless ALLOW_OPEN_API.
    api_key: SecretStr | None = None
    allow_open_api: bool = False
    # Accepted `Host` headers (comma-separated; `*.example.com` matches subdomains); any when unset.
    allowed_hosts: str | None = None
    # /webhook takes Meta's deliveries (up to MAX_BODY_BYTES); the JSON API far smaller bodies.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_api_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Raw webhook deliveries are deleted after this many days (failed ones only once replayed).
    raw_delivery_retention_days: int = Field(default=30, ge=1)
    profile_cache_ttl_seconds: int = Field(default=24 * 3600, ge=0)
    profile_retry_seconds: int = Field(default=300, ge=0)
    profile_worker_enabled: bool = True
    profile_worker_idle_seconds: float = Field(default=1.0, gt=0)
    # A claimed profile is left to its fetcher this long (longer than any Graph call takes).
    profile_claim_seconds: int = Field(default=60, ge=1)

    # The access tokens' lifecycle (app/services/tokens/).
    # Fernet keys (comma-separated) sealing the stored tokens: the first encrypts, every one
    # decrypts, so keys rotate without downtime. Unset: a key derived from
    # INSTAGRAM_APP_SECRET (see docs/configuration.md for what that costs).
    token_encryption_key: SecretStr | None = None
    token_refresh_enabled: bool = True
    # Refresh once the token is a day old and expires within this many days.
    token_refresh_days_before_expiry: int = Field(default=10, ge=1, le=59)
    # How often the refresh job looks at the token, and waits after a failed refresh.
    token_refresh_check_seconds: float = Field(default=3600, gt=0)
    token_refresh_retry_seconds: int = Field(default=3600, ge=1)
    # How long a process uses the token it read from the database before reading it again.
    token_cache_seconds: float = Field(default=5, ge=0)

    # History from the Conversations API (app/services/history/): backfill and gap checks.
    sync_worker_enabled: bool = True
    # Every this many minutes each account's recently active conversations are compared with
    # Meta's list, and what is missing imported.
    sync_sweep_minutes: float = Field(default=60, gt=0)
    # Meta allows 2 Conversations API calls a second per account (0: unpaced, benchmarks only).
    sync_calls_per_second: float = Field(default=2.0, ge=0)
    # Events out (app/services/events/): delivery to consumers' webhook endpoints, retention.
    # http and private / loopback addresses for endpoints: local development and tests only.
    events_allow_private_urls: bool = False
    events_timeout_seconds: float = Field(default=15, gt=0)
    # Seconds between attempts after a failure (each with jitter); then the event is given up.
    events_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    events_disable_after_hours: float = Field(default=120, gt=0)
    events_retention_days: int = Field(default=7, ge=1)
    # The delivery threads' CPU priority (Linux nice, 0-19): when the process's core is
    # saturated, webhooks and reads go first and delivery catches up afterwards.
    events_delivery_nice: int = Field(default=19, ge=0, le=19)

    # Attachments (app/services/media/). By default only Meta's CDN URLs are kept (Meta's
    # policy: docs/media.md); `local` (files under MEDIA_DIR) or `s3` (any S3-compatible store)
    # also keeps the bytes, downloaded by a background worker.
    media_archive: Literal["off", "local", "s3"] = "off"
    media_dir: str = "media"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    media_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    # Hosts downloads may come from besides Meta's CDN (comma-separated, `*.example.com`
    # matches subdomains): the sandbox's. These may be plain http.
    media_allowed_hosts: str | None = None
    # Archived bytes are deleted this many days after they were stored (kept while unset).
    media_retention_days: int | None = Field(default=None, ge=1)
    media_worker_idle_seconds: float = Field(default=1.0, gt=0)

    # Threads for the synchronous endpoints (FastAPI's default is 40).
    worker_threads: int = Field(default=100, ge=1)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # `FOO=` in a .env file means "not configured" (the default), not "the empty string".
        if isinstance(data, dict):
            return {
                key: value
                for key, value in data.items()
                if not (isinstance(value, str) and not value.strip())
            }
        return data

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> "Settings":
        if self.media_archive == "s3" and not self.s3_bucket:
            raise ValueError("MEDIA_ARCHIVE=s3 needs S3_BUCKET")
        return self

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("token_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for key in (part.strip() for part in value.get_secret_value().split(",")):
            try:
                valid = len(base64.urlsafe_b64decode(key.encode())) == FERNET_KEY_BYTES
            except (ValueError, binascii.Error):
                valid = False
            if key and not valid:
                raise ValueError(
                    "TOKEN_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes each), "
                    "comma-separated"
                )
        return value

    @field_validator("instagram_graph_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("events_retry_schedule")
    @classmethod
    def _a_schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("a comma-separated list of seconds, e.g. 5,300,1800") from None
        if not delays or any(delay < 0 for delay in delays):
            raise ValueError("a comma-separated list of seconds (not negative), e.g. 5,300,1800")
        return value

    @property
    def events_retry_delays(self) -> list[float]:
        """EVENTS_RETRY_SCHEDULE as seconds: the wait before each retry, in order."""
        return [float(part) for part in self.events_retry_schedule.split(",") if part.strip()]

    @property
    def sqlalchemy_url(self) -> str:
        """The database to use: DATABASE_URL, else the DB_* parts, else the SQLite file."""
        if self.database_url:
            return self.database_url
        if self.db_host or self.db_name or self.db_user:
            url = URL.create(
                self.db_driver,
                username=self.db_user,
                password=self.db_password.get_secret_value() if self.db_password else None,
                host=self.db_host or "localhost",
                port=self.db_port or 5432,
                database=self.db_name,
            )
            return url.render_as_string(hide_password=False)
        return f"sqlite:///{Path(self.sqlite_path).expanduser()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def account_id(self) -> str | None:
        """The business IG_ID (`/me` user_id, webhook `entry.id`).

        The original README's INSTAGRAM_ACCOUNT_SCOPED_ID was copied from a webhook's
        `recipient.id`, which is this same IG_ID, so it serves when the other is unset.
        """
        return self.instagram_account_id or self.instagram_account_scoped_id

    @property
    def graph_base_url(self) -> str:
        return f"{self.instagram_graph_url}/{self.instagram_api_version}"

    @property
    def send_message_url(self) -> str:
        return self.instagram_send_message_url or f"{self.graph_base_url}/me/messages"

    @property
    def allowed_host_list(self) -> list[str]:
        """ALLOWED_HOSTS as a list; empty when every host is accepted."""
        if not self.allowed_hosts:
            return []
        return [host.strip().lower() for host in self.allowed_hosts.split(",") if host.strip()]

    @property
    def media_allowed_host_list(self) -> list[str]:
        """MEDIA_ALLOWED_HOSTS as a list (lower case)."""
        if not self.media_allowed_hosts:
            return []
        return [
            host.strip().lower() for host in self.media_allowed_hosts.split(",") if host.strip()
        ]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings` instead)."""
    return Settings()
