"""Schemas of the history sync: a backfill job (`/api/v1/accounts/{id}/sync`)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SyncCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"days": 30}]})

    days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="Only conversations active in the last this many days; all when absent.",
    )


class SyncJobRead(BaseModel):
    """A backfill: the account's conversations listed, then each one imported (its 20 newest
    messages with their content, older ones as placeholders: Meta keeps no content of them)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "7",
                    "account_id": "17841400123456789",
                    "status": "running",
                    "since": None,
                    "listed": True,
                    "conversations_total": 120,
                    "conversations_done": 45,
                    "conversations_failed": 1,
                    "messages_imported": 880,
                    "placeholders_imported": 2310,
                    "error": None,
                    "created_at": "2026-11-30T12:00:00Z",
                    "started_at": "2026-11-30T12:00:01Z",
                    "finished_at": None,
                }
            ]
        },
    )

    id: str
    account_id: str
    status: Literal["queued", "running", "done", "failed"]
    since: datetime | None = Field(description="Only conversations active since then.")
    listed: bool = Field(description="Every conversation to import is known (the total is final).")
    conversations_total: int
    conversations_done: int
    conversations_failed: int = Field(
        description="Conversations Meta would not give (each error kept; the run goes on)."
    )
    messages_imported: int = Field(description="Messages stored with their content.")
    placeholders_imported: int = Field(
        description="Messages stored by id and time only (older than a thread's 20 newest)."
    )
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SyncJobList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"data": SyncJobRead.model_config["json_schema_extra"]["examples"]}]  # type: ignore[index]
        }
    )

    data: list[SyncJobRead] = Field(description="The account's backfills, newest first.")
